"""Whether a model should be re-optimized now: a pure function of policy, history and time.

The service, the backtester and the tests all call ``decide``; it reads no clock and no database,
so it is tested with fixed, timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reoptd.policy._schema import Policy, Trigger
from reoptd.policy._units import format_duration


@dataclass(frozen=True)
class CheckView:
    """What ``decide`` needs to know about one stored check."""

    at: datetime
    status: str  # "ok", "failed" or "skipped"
    champion_version: int | None
    drift_share: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    labelled_rows: int = 0


@dataclass(frozen=True)
class ModelState:
    champion_version: int | None
    champion_since: datetime | None  # when the current champion was promoted
    last_run_at: datetime | None = None  # start of the last re-optimization run
    runs_last_day: int = 0  # runs that started in the 24 h before now


@dataclass(frozen=True)
class Decision:
    fire: bool
    triggers: list[str]  # names of the triggers that fired ("drift_share", "metric", "max_age")
    reasons: list[str]  # one plain sentence per trigger and guard

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    @property
    def trigger(self) -> str:
        """The label used in metrics: the first trigger that fired, or "none"."""
        return self.triggers[0] if self.triggers else "none"


def decide(
    policy: Policy, history: Sequence[CheckView], state: ModelState, now: datetime
) -> Decision:
    """Evaluate every trigger, then the guards. ``history`` is oldest first."""
    # Only checks of the current champion count: a drift streak against the previous champion
    # says nothing about the one now in force.
    relevant = [
        c for c in history if c.status == "ok" and c.champion_version == state.champion_version
    ]
    fired: list[str] = []
    reasons: list[str] = []
    for trigger in policy.triggers:
        hit, reason = _evaluate(policy, trigger, relevant, state, now)
        reasons.append(reason)
        if hit and trigger.kind not in fired:
            fired.append(trigger.kind)
    if not policy.triggers:
        reasons.append("no triggers configured")
    if not fired:
        return Decision(False, [], reasons)
    blocked = False
    guards = policy.guards
    if guards.cooldown and state.last_run_at is not None:
        since = now - state.last_run_at
        if since < guards.cooldown:
            blocked = True
            reasons.append(
                f"cooldown: last run {_ago(since)} ago < {format_duration(guards.cooldown)}"
            )
        else:
            reasons.append("cooldown ok")
    if guards.max_runs_per_day is not None:
        if state.runs_last_day >= guards.max_runs_per_day:
            blocked = True
            reasons.append(
                f"budget: {state.runs_last_day} runs in the last 24h"
                f" >= max_runs_per_day {guards.max_runs_per_day}"
            )
        else:
            reasons.append(f"budget ok ({state.runs_last_day}/{guards.max_runs_per_day} today)")
    return Decision(not blocked, fired, reasons)


def _evaluate(
    policy: Policy,
    trigger: Trigger,
    checks: Sequence[CheckView],
    state: ModelState,
    now: datetime,
) -> tuple[bool, str]:
    if trigger.drift_share is not None:
        spec = trigger.drift_share
        recent = checks[-spec.for_ :]
        values = [c.drift_share for c in recent if c.drift_share is not None]
        over = sum(v > spec.above for v in values)
        latest = f"{values[-1]:.2f}" if values else "n/a"
        hit = len(values) == spec.for_ and over == spec.for_
        op = ">" if hit else "vs"
        return hit, (f"drift_share {latest} {op} {spec.above:.2f} for {over}/{spec.for_} checks")
    if trigger.metric is not None:
        spec = trigger.metric
        name = spec.name or policy.metric
        recent = checks[-spec.for_ :]
        usable = [
            c.metrics[name]
            for c in recent
            if name in c.metrics and c.labelled_rows >= spec.min_labels
        ]
        if len(usable) < spec.for_:
            labels = recent[-1].labelled_rows if recent else 0
            return False, f"{name}: not enough labels ({labels} < {spec.min_labels})"
        if spec.below is not None:
            bad = sum(v < spec.below for v in usable)
            hit = bad == spec.for_
            return hit, f"{name} {usable[-1]:.3f} {'<' if hit else 'vs'} {spec.below} floor"
        bad = sum(v > spec.above for v in usable)  # type: ignore[operator]
        hit = bad == spec.for_
        return hit, f"{name} {usable[-1]:.3f} {'>' if hit else 'vs'} {spec.above} ceiling"
    assert trigger.max_age is not None
    if state.champion_since is None:
        return False, "max_age: no champion yet"
    age = now - state.champion_since
    hit = age >= trigger.max_age
    return hit, (
        f"champion age {_ago(age)} {'>=' if hit else '<'} max_age"
        f" {format_duration(trigger.max_age)}"
    )


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
