"""Whether a model should be re-optimized now: a pure function of policy, history and time.

The service, the backtester and the tests all call ``decide``; it reads no clock and no database,
so it is tested with fixed, timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

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
    drifted: tuple[str, ...] = ()  # features flagged as drifted
    prediction_drift: bool | None = None  # did the champion's predictions drift
    estimated: dict[str, float] = field(default_factory=dict)  # metrics estimated without labels
    # the estimates' band at ``estimated_confidence``
    estimated_lower: dict[str, float] = field(default_factory=dict)
    estimated_upper: dict[str, float] = field(default_factory=dict)
    estimated_confidence: float | None = None
    new_rows: int | None = None  # rows that arrived after the champion's training data
    multivariate_auc: float | None = None  # domain classifier's ROC AUC, if measured


@dataclass(frozen=True)
class ModelState:
    champion_version: int | None
    champion_since: datetime | None  # when the current champion was promoted
    last_run_at: datetime | None = None  # start of the last re-optimization run
    runs_last_day: int = 0  # runs that started in the 24 h before now
    compute_last_day: float = 0.0  # seconds those runs took
    last_decision_at: datetime | None = None  # the decision before this one
    champion_metrics: dict[str, float] = field(default_factory=dict)  # its validation metrics


@dataclass(frozen=True)
class Decision:
    fire: bool
    triggers: list[str]  # kinds of the triggers that fired ("drift_share", "metric", ...)
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
    """Evaluate every trigger, combine them (any/all), then apply the guards.

    ``history`` is oldest first; its last entry is normally the check just made.
    """
    # Only checks of the current champion since it took over count: a streak against another
    # champion (or against this one before a rollback replaced it) says nothing about now.
    since = state.champion_since
    relevant = [
        c
        for c in history
        if c.status == "ok"
        and c.champion_version == state.champion_version
        and (since is None or c.at >= since)
    ]
    # A schedule is due if a cron time passed since the last decision; checks that were skipped
    # or failed made no decision, so a cron time they covered is not lost.
    previous_at = state.last_decision_at
    if previous_at is None and len(history) >= 2:
        previous_at = history[-2].at
    fired: list[str] = []
    reasons: list[str] = []
    hits: list[bool] = []
    for trigger in policy.triggers:
        hit, reason = _evaluate(policy, trigger, relevant, state, now, previous_at)
        hits.append(hit)
        reasons.append(reason)
        if hit and trigger.kind not in fired:
            fired.append(trigger.kind)
    if not policy.triggers:
        reasons.append("no triggers configured")
    wanted = any(hits) if policy.combine == "any" else bool(hits) and all(hits)
    if not wanted:
        if policy.combine == "all" and fired:
            reasons.append(f"combine all: {sum(hits)}/{len(hits)} triggers fired")
        return Decision(False, [], reasons)
    if policy.combine == "all":
        reasons.append(f"combine all: {len(hits)}/{len(hits)} triggers fired")
    blocked = False
    guards = policy.guards
    if guards.cooldown and state.last_run_at is not None:
        elapsed = now - state.last_run_at
        if elapsed < guards.cooldown:
            blocked = True
            reasons.append(
                f"cooldown: last run {_ago(elapsed)} ago < {format_duration(guards.cooldown)}"
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
    if guards.max_compute_per_day is not None:
        limit = guards.max_compute_per_day.total_seconds()
        used = _ago(timedelta(seconds=state.compute_last_day))
        if state.compute_last_day >= limit:
            blocked = True
            reasons.append(
                f"compute: {used} used in the last 24h"
                f" >= max_compute_per_day {format_duration(guards.max_compute_per_day)}"
            )
        else:
            reasons.append(
                f"compute ok ({used} of {format_duration(guards.max_compute_per_day)} today)"
            )
    return Decision(not blocked, fired, reasons)


def checks_needed(policy: Policy) -> int:
    """How many recent checks ``decide`` looks at: the longest "for N checks" of any trigger."""
    return max([1, *(getattr(getattr(t, t.kind), "for_", 1) for t in policy.triggers)])


def _streak(checks: Sequence[CheckView], n: int, test: Callable[[CheckView], bool | None]):
    """How many of the last ``n`` checks pass ``test``, and whether there were ``n`` to judge."""
    recent = checks[-n:]
    judged = [test(c) for c in recent]
    return sum(bool(j) for j in judged), len(recent) == n and all(j is not None for j in judged)


def _evaluate(
    policy: Policy,
    trigger: Trigger,
    checks: Sequence[CheckView],
    state: ModelState,
    now: datetime,
    previous_at: datetime | None,
) -> tuple[bool, str]:
    if trigger.drift_share is not None:
        spec = trigger.drift_share
        over, full = _streak(
            checks,
            spec.for_,
            lambda c: None if c.drift_share is None else c.drift_share > spec.above,
        )
        values = [c.drift_share for c in checks[-spec.for_ :] if c.drift_share is not None]
        latest = f"{values[-1]:.2f}" if values else "n/a"
        hit = full and over == spec.for_
        op = ">" if hit else "vs"
        return hit, f"drift_share {latest} {op} {spec.above:.2f} for {over}/{spec.for_} checks"
    if trigger.drift_features is not None:
        spec_f = trigger.drift_features
        watched = set(spec_f.features)
        over, full = _streak(checks, spec_f.for_, lambda c: bool(watched & set(c.drifted)))
        hit = full and over == spec_f.for_
        drifted = sorted(watched & set(checks[-1].drifted)) if checks else []
        named = ", ".join(drifted) if drifted else "none"
        return hit, (f"critical features drifted: {named} ({over}/{spec_f.for_} checks)")
    if trigger.prediction_drift is not None:
        need = trigger.prediction_drift.for_
        over, full = _streak(checks, need, lambda c: c.prediction_drift)
        hit = full and over == need
        return hit, f"prediction drift in {over}/{need} checks"
    if trigger.metric is not None:
        return _metric(policy, trigger, checks, state)
    if trigger.estimated_metric is not None:
        return _estimated(policy, trigger, checks)
    if trigger.multivariate_drift is not None:
        spec_m = trigger.multivariate_drift
        over, full = _streak(
            checks,
            spec_m.for_,
            lambda c: None if c.multivariate_auc is None else c.multivariate_auc > spec_m.above,
        )
        if not full:
            return False, "multivariate drift: not measured in enough checks"
        hit = over == spec_m.for_
        auc = checks[-1].multivariate_auc
        return hit, (
            f"multivariate drift AUC {auc:.3f} {'>' if hit else 'vs'} {spec_m.above}"
            f" for {over}/{spec_m.for_} checks"
        )
    if trigger.new_rows is not None:
        need_rows = trigger.new_rows.at_least
        rows = checks[-1].new_rows if checks else None
        if rows is None:
            return False, "new rows: not counted yet"
        hit = rows >= need_rows
        return hit, f"{rows} new rows {'>=' if hit else '<'} {need_rows}"
    if trigger.schedule is not None:
        return _schedule(trigger.schedule, previous_at, now)
    assert trigger.max_age is not None
    if state.champion_since is None:
        return False, "max_age: no champion yet"
    age = now - state.champion_since
    hit = age >= trigger.max_age
    return hit, (
        f"champion age {_ago(age)} {'>=' if hit else '<'} max_age"
        f" {format_duration(trigger.max_age)}"
    )


def _metric(
    policy: Policy, trigger: Trigger, checks: Sequence[CheckView], state: ModelState
) -> tuple[bool, str]:
    spec = trigger.metric
    assert spec is not None
    name = spec.name or policy.metric
    recent = checks[-spec.for_ :]
    usable = [
        c.metrics[name] for c in recent if name in c.metrics and c.labelled_rows >= spec.min_labels
    ]
    if len(usable) < spec.for_:
        labels = recent[-1].labelled_rows if recent else 0
        if labels >= spec.min_labels:
            return False, f"{name}: not measured in {spec.for_} recent check(s)"
        return False, f"{name}: not enough labels ({labels} < {spec.min_labels})"
    if spec.below is not None:
        hit = all(v < spec.below for v in usable)
        return hit, f"{name} {usable[-1]:.3f} {'<' if hit else 'vs'} {spec.below} floor"
    if spec.above is not None:
        hit = all(v > spec.above for v in usable)
        return hit, f"{name} {usable[-1]:.3f} {'>' if hit else 'vs'} {spec.above} ceiling"
    assert spec.drop is not None
    if name not in state.champion_metrics:
        return False, f"{name}: the champion has no validation {name} to compare with"
    baseline = state.champion_metrics[name]
    higher = policy.higher_is_better(name)
    drops = [(baseline - v) if higher else (v - baseline) for v in usable]
    hit = all(d > spec.drop for d in drops)
    latest = usable[-1]
    side = "below" if latest < baseline else "above" if latest > baseline else "level with"
    gap = "" if latest == baseline else f"{abs(latest - baseline):.3f} "
    return hit, (
        f"{name} {latest:.3f} is {gap}{side} validation {baseline:.3f} (drop limit {spec.drop})"
    )


def _estimated(policy: Policy, trigger: Trigger, checks: Sequence[CheckView]) -> tuple[bool, str]:
    """An estimate past its bound for ``for`` checks; with ``confidence``, its whole band: the
    upper bound below a floor (the lower bound above a ceiling), the band computed at that
    confidence or a higher one."""
    spec = trigger.estimated_metric
    assert spec is not None
    name = spec.name or policy.metric
    rising = spec.below is not None
    bound = spec.below if spec.below is not None else spec.above
    assert bound is not None
    level = spec.confidence

    def past(c: CheckView) -> bool | None:
        if name not in c.estimated:
            return None
        if level is None:
            value = c.estimated[name]
        else:
            band = c.estimated_upper if rising else c.estimated_lower
            if name not in band or c.estimated_confidence is None:
                return None
            if c.estimated_confidence < level - 1e-9:
                return None
            value = band[name]
        return value < bound if rising else value > bound

    over, full = _streak(checks, spec.for_, past)
    if not full:
        return False, f"estimated {name}: no estimate available"
    hit = over == spec.for_
    last = checks[-1]
    value = last.estimated[name]
    op = ("<" if rising else ">") if hit else "vs"
    where = "floor" if rising else "ceiling"
    if level is None:
        return hit, f"estimated {name} {value:.3f} {op} {bound} {where}"
    low, high = last.estimated_lower[name], last.estimated_upper[name]
    return hit, (
        f"estimated {name} {value:.3f} ({level:.0%} band {low:.3f}-{high:.3f}) {op} {bound} {where}"
    )


def _schedule(expression: str, previous_at: datetime | None, now: datetime) -> tuple[bool, str]:
    """Fires when a cron time falls after the previous check and at or before ``now``."""
    from reoptd.policy._schema import cron_trigger

    cron = cron_trigger(expression)
    since = previous_at if previous_at is not None else now - timedelta(microseconds=1)
    due = cron.get_next_fire_time(None, since + timedelta(microseconds=1))
    hit = due is not None and due <= now
    when = "n/a" if due is None else due.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    verb = "was due at" if hit else "next at"
    return hit, f"schedule '{expression}' {verb} {when} UTC"


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    if seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
