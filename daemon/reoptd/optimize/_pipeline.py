"""A re-optimization run: gather the data, run the policy's steps, decide on promotion."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reoptd.data import Source, labelled, validate_read
from reoptd.errors import OptimizeError
from reoptd.monitor import Champion
from reoptd.optimize._base import RunContext, Step
from reoptd.optimize._runner import Executor, InlineExecutor
from reoptd.plugins import STEPS
from reoptd.policy import Policy, format_duration

log = logging.getLogger("reoptd.optimize")


@dataclass
class RunResult:
    ctx: RunContext
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0


def prepare(policy: Policy, source: Source, champion: Champion | None, now: datetime) -> RunContext:
    """Split the labelled rows of the training window into train and the newest holdout."""
    start = now - policy.train.window
    frame = labelled(validate_read(source.read(start, now), policy, source), policy)
    frame = frame.sort_values(policy.timestamp, kind="stable").reset_index(drop=True)
    holdout_rows = round(len(frame) * policy.promote.holdout)
    train = frame.iloc[: len(frame) - holdout_rows]
    holdout = frame.iloc[len(frame) - holdout_rows :]
    if len(train) < policy.train.min_rows:
        raise OptimizeError(
            f"model {policy.model!r}: {len(train)} labelled training rows in the last"
            f" {format_duration(policy.train.window)}"
            f" (after a {policy.promote.holdout:.0%} holdout),"
            f" fewer than train.min_rows={policy.train.min_rows}"
        )
    if "validate" in policy.steps and holdout_rows < 10:
        raise OptimizeError(f"model {policy.model!r}: holdout of {holdout_rows} rows is too small")
    return RunContext(policy=policy, now=now, train=train, holdout=holdout, champion=champion)


def run_pipeline(
    policy: Policy,
    source: Source,
    champion: Champion | None,
    now: datetime,
    *,
    executor: Executor | None = None,
    **context: Any,
) -> RunResult:
    """Gather the run's rows here, run the policy's steps on ``executor`` (default: in this
    thread); raises ``OptimizeError`` if any step cannot finish or overruns its budget.
    ``context`` fills the optional parts of ``RunContext`` (Optuna storage, champion params)."""
    started = time.perf_counter()
    ctx = prepare(policy, source, champion, now)
    for key, value in context.items():
        setattr(ctx, key, value)
    result = RunResult(ctx)
    result.steps = (executor or InlineExecutor()).submit(ctx).result()
    if "validate" not in policy.steps:
        # a compress-only run that kept the champion uncompressed has nothing new to promote
        ctx.promote = ctx.challenger is not None and not (
            ctx.compressing_champion and not ctx.compressed
        )
        ctx.reason = "pipeline has no validate step: challenger promoted unvalidated"
    result.seconds = time.perf_counter() - started
    return result


def run_steps(
    ctx: RunContext, on_step: Callable[[str, float], None] | None = None
) -> dict[str, dict[str, Any]]:
    """Run the policy's steps in order on ``ctx``; their records by name. ``on_step(name,
    budget_seconds)`` is called as each step starts (the process executor's deadline)."""
    policy = ctx.policy
    steps: dict[str, dict[str, Any]] = {}
    for spec in policy.pipeline:
        step: Step = STEPS.get(spec.name).create()
        if on_step is not None:
            on_step(spec.name, spec.limit.total_seconds())
        t0 = time.perf_counter()
        record = step.run(ctx)
        seconds = time.perf_counter() - t0
        record["seconds"] = round(seconds, 4)
        steps[spec.name] = record
        log.info("%s: step %s done in %.2fs", policy.model, spec.name, seconds)
        if seconds > spec.limit.total_seconds():
            # in this thread a step cannot be interrupted: the budget is enforced on its result,
            # and a step that overran never produces a champion
            raise OptimizeError(
                f"step {spec.name} took {seconds:.1f}s, over its budget of"
                f" {format_duration(spec.limit)}; the challenger is discarded"
            )
    return steps
