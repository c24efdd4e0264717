"""Validate: challenger against champion on the holdout neither has trained on."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from reoptd.errors import OptimizeError
from reoptd.monitor import evaluate, metric_names
from reoptd.optimize._base import RunContext
from reoptd.policy import format_size


class Validate:
    name = "validate"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        if ctx.challenger is None:
            raise OptimizeError("validate: no challenger (the pipeline needs a retrain step)")
        names = metric_names(policy)
        metric = policy.metric
        ctx.challenger_metrics = evaluate(
            ctx.challenger, ctx.holdout, policy.target, names, policy.promote.costs
        )
        challenger = ctx.challenger_metrics[metric]
        record: dict[str, Any] = {
            "metric": metric,
            "holdout_rows": len(ctx.holdout),
            "challenger": challenger,
        }
        violation = _constraints(ctx, record)
        if ctx.champion is None:
            if violation:
                raise OptimizeError(f"first version rejected: {violation}")
            ctx.promote = True
            ctx.reason = f"first version: holdout {metric} {challenger:.4f}"
            return record
        ctx.champion_metrics = evaluate(
            ctx.champion.model, ctx.holdout, policy.target, names, policy.promote.costs
        )
        champion = ctx.champion_metrics[metric]
        if ctx.compressing_champion:
            return _compressed_champion(ctx, record, champion, violation)
        gain = challenger - champion if policy.higher_is_better() else champion - challenger
        needed = policy.promote.min_improvement
        ctx.promote = gain > 0 and gain >= needed
        verb = "beats" if ctx.promote else "does not beat"
        ctx.reason = (
            f"challenger {metric} {challenger:.4f} {verb} champion v{ctx.champion.version}"
            f" {champion:.4f} on {len(ctx.holdout)} holdout rows"
            f" (gain {gain:+.4f}, needed > 0 and >= {needed:g})"
        )
        record.update({"champion": champion, "gain": gain})
        if violation:
            ctx.promote = False
            ctx.reason += f"; rejected: {violation}"
        return record


def _compressed_champion(
    ctx: RunContext, record: dict[str, Any], champion: float, violation: str
) -> dict[str, Any]:
    """A compressed champion need not beat the champion: it must not lose more than
    ``compress.max_metric_drop`` of its metric on the holdout (it wins on size or latency)."""
    assert ctx.champion is not None
    policy = ctx.policy
    metric, challenger = policy.metric, record["challenger"]
    drop = champion - challenger if policy.higher_is_better() else challenger - champion
    allowed = policy.compress.max_metric_drop
    record.update({"champion": champion, "gain": -drop})
    if not ctx.compressed:
        ctx.promote = False
        ctx.reason = f"compress: {ctx.compress_reason}; champion v{ctx.champion.version} kept"
        return record
    ctx.promote = drop <= allowed
    verb = "within" if ctx.promote else "not within"
    ctx.reason = (
        f"compressed champion v{ctx.champion.version} ({ctx.compress_reason}): holdout {metric}"
        f" {challenger:.4f} vs {champion:.4f} on {len(ctx.holdout)} rows, a drop of {drop:+.4f},"
        f" {verb} max_metric_drop {allowed:g}"
    )
    if violation:
        ctx.promote = False
        ctx.reason += f"; rejected: {violation}"
    return record


#: wall seconds the validate step spends timing batch-1 predictions (at least ``LATENCY_ROWS``
#: rows, at most the 50 given): a one-row predict of a scikit-learn pipeline costs ~15 ms, so
#: 50 of them were ~0.8 s, most of a small run's CPU and of the slot it holds (a drift storm)
LATENCY_BUDGET = 0.15
#: rows always timed, however slow each one is
LATENCY_ROWS = 5


def batch1_latency(model: Any, rows: Any, budget: float | None = None) -> float:
    """Seconds per row, predicting one row at a time on one thread: a serving call's cost, and
    a number that does not swing with whatever else runs on the machine's cores. The median of
    the rows' times (a row preempted by another process does not move it); ``budget``: stop
    after that many seconds once ``LATENCY_ROWS`` rows are timed (``None``: every row)."""
    from threadpoolctl import threadpool_limits

    times: list[float] = []
    with threadpool_limits(limits=1):
        began = time.perf_counter()
        for i in range(len(rows)):
            started = time.perf_counter()
            model.predict(rows.iloc[i : i + 1])
            times.append(time.perf_counter() - started)
            spent = time.perf_counter() - began
            if budget is not None and len(times) >= LATENCY_ROWS and spent >= budget:
                break
    return float(np.median(times)) if times else 0.0


def _constraints(ctx: RunContext, record: dict[str, Any]) -> str:
    """Measure the challenger's size and batch-1 latency; say which promote limit it breaks."""
    assert ctx.challenger is not None
    promote = ctx.policy.promote
    size = len(ctx.challenger.to_bytes())
    latency = batch1_latency(ctx.challenger, ctx.holdout.head(50), LATENCY_BUDGET)
    record.update({"size_bytes": size, "latency_seconds": latency})
    broken = []
    if promote.max_size is not None and size > promote.max_size:
        broken.append(f"size {format_size(size)} > max_size {format_size(promote.max_size)}")
    if promote.max_latency is not None and latency > promote.max_latency.total_seconds():
        broken.append(
            f"latency {latency * 1000:.2f}ms > max_latency"
            f" {promote.max_latency.total_seconds() * 1000:g}ms (batch 1)"
        )
    return "; ".join(broken)
