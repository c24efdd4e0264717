"""Build every candidate the policy's methods allow, measure each one, and select.

Methods (plugins of ``reoptd.plugins.COMPRESS_METHODS``) chain in the order they declare, today
distill -> prune -> magnitude -> low_rank -> quantize | static_quantize; every non-empty subset
of the policy's methods, in that order and with at most one method that ends a chain (a quantized
network is not compressed further), is a candidate (an sklearn model only through a method that
takes any model: distill). Shared prefixes are built once:
``distill+prune+quantize`` reuses the ``distill+prune`` model. Who calls it: the compress step
(``reoptd.optimize._compress``) and ``bench/compression.py``.

Serving forms (``compress.serving``): with ``auto`` or ``onnx`` every candidate, the uncompressed
model included, is also exported to ONNX (``_export``) and its outputs compared with the Python
form's on the scoring rows; an export within ``compress.serving_tolerance`` is one more candidate,
named ``<candidate>@onnx``, measured like the others (as it serves: on numpy arrays). ``auto``
chooses among all; ``onnx`` only among the ONNX forms, the uncompressed model's ONNX form being
the reference (it must export); ``python`` exports nothing.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models import OnnxModel
from reoptd.models.torch import TorchMLP
from reoptd.monitor import evaluate, metric_names
from reoptd.optimize.compress._export import (
    ONNX_SUFFIX,
    NotExportable,
    export_onnx,
    max_difference,
)
from reoptd.optimize.compress._measure import latencies, size_bytes
from reoptd.optimize.compress._select import BASELINE, Candidate, Selection, select
from reoptd.plugins import COMPRESS_METHODS
from reoptd.policy import Policy

log = logging.getLogger("reoptd.compress")


@dataclass
class Plan:
    candidates: list[Candidate]
    selection: Selection
    batch_size: int
    serving: str = "python"
    exports: list[dict[str, Any]] = field(default_factory=list)  # each ONNX export's outcome

    @property
    def chosen(self) -> Candidate:
        return self.selection.chosen

    def record(self) -> dict[str, Any]:
        return {
            "candidates": [c.record(self.batch_size) for c in self.candidates],
            "chosen": self.chosen.name,
            "chosen_candidate": self.chosen.record(self.batch_size),
            "reason": self.selection.reason,
            "serving": self.serving,
            "exports": self.exports,
        }


def sequences(methods: list[str], torch_baseline: bool) -> list[tuple[str, ...]]:
    """The method chains to try, in the methods' order, shortest first."""
    plugins = sorted(
        (p for p in COMPRESS_METHODS.plugins() if p.name in methods), key=lambda p: p.order
    )
    ordered = [p.name for p in plugins]
    ends = {p.name for p in plugins if p.ends_chain}
    any_model = {p.name for p in plugins if p.any_model}
    chains = [
        combo
        for n in range(1, len(ordered) + 1)
        for combo in itertools.combinations(ordered, n)
        if (torch_baseline or combo[0] in any_model) and sum(m in ends for m in combo) <= 1
    ]
    return chains


def compress_model(
    baseline: Any,
    fit_rows: pd.DataFrame,
    valid_rows: pd.DataFrame,
    policy: Policy,
) -> Plan:
    """Candidates from ``baseline`` (learning on ``fit_rows``), measured on ``valid_rows``,
    which neither ``baseline`` nor the candidates may have trained on: an in-sample baseline
    would look better than it is and every candidate worse."""
    cfg = policy.compress
    target = policy.target
    names = metric_names(policy)
    batch_sizes = cfg.all_batch_sizes

    def score(name: str, methods: list[str], model: Any) -> Candidate:
        metric = evaluate(model, valid_rows, target, names)[policy.metric]
        return Candidate(name, methods, float(metric), size_bytes(model), {}, model)

    if isinstance(baseline, OnnxModel):
        raise OptimizeError(
            f"compress: model {policy.model!r} is in its ONNX serving form already and is not"
            " compressed again: add `retrain` before `compress` in the pipeline"
        )
    torch_baseline = isinstance(baseline, TorchMLP)
    starters = [m for m in cfg.methods if COMPRESS_METHODS.get(m).any_model]
    if not torch_baseline and not starters and cfg.serving == "python":
        raise OptimizeError(
            f"compress: model {policy.model!r} is not a torch model; only `distill` applies"
        )
    candidates = [score(BASELINE, [], baseline)]
    built: dict[tuple[str, ...], Any] = {(): baseline}
    for chain in sequences(cfg.methods, torch_baseline):
        try:
            method = COMPRESS_METHODS.get(chain[-1])
            built[chain] = method.apply(built[chain[:-1]], fit_rows, policy)
        except OptimizeError as exc:  # a method that does not apply to this chain is skipped
            log.info("%s: candidate %s skipped: %s", policy.model, "+".join(chain), exc)
            continue
        candidates.append(score("+".join(chain), list(chain), built[chain]))
    exports: list[dict[str, Any]] = []
    if cfg.serving != "python":
        for python in list(candidates):
            onnx = _onnx_form(python, valid_rows, policy, exports)
            if onnx is not None:
                candidates.append(onnx)
                onnx.metric = float(evaluate(onnx.model, valid_rows, target, names)[policy.metric])
    models = [c.model for c in candidates]
    for b in batch_sizes:
        timed = latencies(models, valid_rows, b, cfg.repetitions, cfg.threads, cfg.timer)
        for candidate, measured in zip(candidates, timed, strict=True):
            candidate.latency[b] = measured
    for candidate in candidates:
        log.info(
            "%s: candidate %s: %s %.4f, %d bytes, p50 %.3f ms at batch %d",
            policy.model,
            candidate.name,
            policy.metric,
            candidate.metric,
            candidate.size_bytes,
            candidate.latency[cfg.batch_size].p50_ms,
            cfg.batch_size,
        )
    pool, reference = candidates, BASELINE
    if cfg.serving == "onnx":
        reference = BASELINE + ONNX_SUFFIX
        pool = [c for c in candidates if c.serving == "onnx"]
        if not any(c.name == reference for c in pool):
            failed = next((e["reason"] for e in exports if e["name"] == reference), "")
            raise OptimizeError(
                f"compress: model {policy.model!r}: compress.serving is onnx, but the"
                f" uncompressed model has no ONNX form: {failed}"
            )
        for c in candidates:
            if c.serving != "onnx":
                c.verdict = "compress.serving is onnx: only ONNX forms are chosen"
    selection = select(
        pool,
        objective=cfg.objective,
        batch_size=cfg.batch_size,
        max_metric_drop=cfg.max_metric_drop,
        higher_is_better=policy.higher_is_better(),
        min_speedup=cfg.min_speedup,
        baseline_name=reference,
    )
    return Plan(candidates, selection, cfg.batch_size, cfg.serving, exports)


def _onnx_form(
    python: Candidate, rows: pd.DataFrame, policy: Policy, exports: list[dict[str, Any]]
) -> Candidate | None:
    """The ONNX form of ``python`` as a candidate, or None (the reason goes to ``exports``)."""
    cfg = policy.compress
    name = python.name + ONNX_SUFFIX
    try:
        onnx = export_onnx(python.model, cfg.threads)
    except NotExportable as exc:
        log.info("%s: no ONNX form of %s: %s", policy.model, python.name, exc)
        exports.append({"name": name, "exported": False, "reason": str(exc)})
        return None
    difference = max_difference(python.model, onnx, rows)
    outcome: dict[str, Any] = {"name": name, "max_difference": difference}
    exports.append(outcome)
    if not difference <= cfg.serving_tolerance:  # NaN fails too
        outcome |= {
            "exported": False,
            "reason": f"outputs differ from the python form's by {difference:.3g} >"
            f" compress.serving_tolerance {cfg.serving_tolerance:g} on {len(rows)} rows",
        }
        log.info("%s: %s: %s", policy.model, name, outcome["reason"])
        return None
    outcome["exported"] = True
    return Candidate(
        name,
        list(python.methods),
        python.metric,
        size_bytes(onnx),
        {},
        onnx,
        serving="onnx",
        max_difference=difference,
    )
