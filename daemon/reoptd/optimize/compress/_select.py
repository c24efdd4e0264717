"""Accuracy-aware selection among measured candidates.

``select`` is a pure function of the measurements: among the candidates whose metric is within
``max_metric_drop`` of the uncompressed baseline's, the best on the objective (p50 latency at the
production batch size, or artifact size), and never one that is not strictly better than the
baseline on that objective. On latency, "better" means beyond the noise of the timing: at least
``min_speedup`` times faster (p50) AND with the 95% confidence intervals of the two medians
apart, so a 1.05x "win" measured on a busy machine does not cost metric. When none qualifies
the baseline is kept, and the reason says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reoptd.optimize.compress._measure import Latency

BASELINE = "uncompressed"


@dataclass
class Candidate:
    name: str
    methods: list[str]
    metric: float
    size_bytes: int
    latency: dict[int, Latency]
    model: Any = field(default=None, repr=False)
    verdict: str = ""  # why it was or was not chosen
    serving: str = "python"  # the serving form: python (the family's own) or onnx
    max_difference: float | None = None  # onnx: largest output difference from the python form

    def objective(self, objective: str, batch_size: int) -> float:
        if objective == "size":
            return float(self.size_bytes)
        return self.latency[batch_size].p50_ms

    def record(self, batch_size: int) -> dict[str, Any]:
        main = self.latency[batch_size]
        return {
            "name": self.name,
            "methods": list(self.methods),
            "metric": self.metric,
            "size_bytes": self.size_bytes,
            "latency_p50_ms": round(main.p50_ms, 4),
            "latency_p95_ms": round(main.p95_ms, 4),
            "latency_p50_ci_ms": [round(v, 4) for v in main.interval],
            "batch_size": batch_size,
            "latency_by_batch": {
                str(b): {
                    "p50_ms": round(v.p50_ms, 4),
                    "p95_ms": round(v.p95_ms, 4),
                    "wall_p50_ms": round(v.wall_p50_ms, 4),
                    "wall_p95_ms": round(v.wall_p95_ms, 4),
                }
                for b, v in self.latency.items()
            },
            "verdict": self.verdict,
            "serving": self.serving,
            "max_difference": self.max_difference,
        }


@dataclass
class Selection:
    chosen: Candidate
    reason: str


def metric_drop(baseline: float, value: float, higher_is_better: bool) -> float:
    """How much worse ``value`` is than ``baseline`` (negative: better)."""
    return baseline - value if higher_is_better else value - baseline


def select(
    candidates: list[Candidate],
    *,
    objective: str,
    batch_size: int,
    max_metric_drop: float,
    higher_is_better: bool,
    min_speedup: float = 1.2,
    baseline_name: str = BASELINE,
) -> Selection:
    """Choose among ``candidates`` (one of them named ``baseline_name``, the reference: by
    default ``BASELINE``); sets each one's verdict."""
    baseline = next(c for c in candidates if c.name == baseline_name)
    unit = "bytes" if objective == "size" else f"ms p50 at batch {batch_size}"
    base_value = baseline.objective(objective, batch_size)
    baseline.verdict = "the uncompressed model: the baseline"
    eligible: list[Candidate] = []
    for c in candidates:
        if c is baseline:
            continue
        drop = metric_drop(baseline.metric, c.metric, higher_is_better)
        value = c.objective(objective, batch_size)
        if drop > max_metric_drop:
            c.verdict = f"metric drop {drop:.4f} > max_metric_drop {max_metric_drop:g}"
        elif value >= base_value:
            c.verdict = (
                f"not better than the uncompressed model on {objective}:"
                f" {value:.4g} >= {base_value:.4g} {unit}"
            )
        elif objective == "latency" and (
            noise := _within_noise(baseline, c, batch_size, min_speedup)
        ):
            c.verdict = f"not better than the uncompressed model beyond timing noise: {noise}"
        else:
            c.verdict = f"eligible: metric drop {drop:.4f}, {objective} {value:.4g} {unit}"
            eligible.append(c)
    if not eligible:
        reason = (
            f"no candidate is within max_metric_drop {max_metric_drop:g} and better than the"
            f" uncompressed model on {objective}: kept {baseline.name}"
        )
        return Selection(baseline, reason)
    best = min(
        eligible,
        key=lambda c: (
            c.objective(objective, batch_size),
            metric_drop(baseline.metric, c.metric, higher_is_better),
        ),
    )
    best.verdict = "chosen: " + best.verdict.removeprefix("eligible: ")
    ratio = base_value / max(best.objective(objective, batch_size), 1e-12)
    reason = (
        f"chose {best.name}: {ratio:.2f}x better on {objective} ({unit}) than the uncompressed"
        f" model, metric {best.metric:.4f} vs {baseline.metric:.4f}"
    )
    return Selection(best, reason)


def _within_noise(
    baseline: Candidate, candidate: Candidate, batch_size: int, min_speedup: float
) -> str:
    """Why the latency win of ``candidate`` is within timing noise ("" when it is not)."""
    base, cand = baseline.latency[batch_size], candidate.latency[batch_size]
    ratio = base.p50_ms / max(cand.p50_ms, 1e-12)
    if ratio < min_speedup:
        return f"{ratio:.2f}x faster < compress.min_speedup {min_speedup:g}x"
    base_low, _ = base.interval
    _, cand_high = cand.interval
    if cand_high >= base_low:
        return (
            f"{ratio:.2f}x faster, but the 95% intervals of the medians overlap"
            f" ({cand_high:.4g} >= {base_low:.4g} ms)"
        )
    return ""
