"""Multivariate drift with a domain classifier: flagged after a seeded change, not before,
including a change in correlation only, which every per-column test misses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from label_streams import START, label_times, policy, stream

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import ReplaySource
from reoptd.metrics import Metrics
from reoptd.monitor import feature_drift
from reoptd.monitor._multivariate import domain_classifier_auc
from reoptd.policy import CheckView, ModelState, decide, explain
from reoptd.store import Store

CHANGE = START + timedelta(hours=6)
ON = {"multivariate": {"enabled": True, "sample_rows": 1500}}


def _windows(change: str, seed: int):
    frame = stream(change, change_at=CHANGE, hours=10, every=timedelta(seconds=10), seed=seed)
    reference = frame[frame.ts < START + timedelta(hours=3)]
    before = frame[(frame.ts >= START + timedelta(hours=3)) & (frame.ts < CHANGE)]
    after = frame[frame.ts >= CHANGE + timedelta(hours=1)]
    return reference, before, after


def test_a_change_in_correlation_only_is_caught_by_the_domain_classifier_alone() -> None:
    p = policy(monitor=ON)
    reference, before, after = _windows("correlation", seed=21)
    # every column keeps its own distribution: the per-column tests see nothing, before or after
    for window in (before, after):
        assert not any(d.drifted for d in feature_drift(p, reference, window).values())
    quiet = domain_classifier_auc(p, reference, before)
    loud = domain_classifier_auc(p, reference, after)
    assert quiet.rows == 1080 and not quiet.drifted and quiet.auc < 0.55, quiet
    assert loud.drifted and loud.auc > 0.65, loud


def test_a_covariate_shift_is_flagged_after_the_change_and_not_before() -> None:
    p = policy(monitor=ON)
    reference, before, after = _windows("covariate", seed=22)
    assert not domain_classifier_auc(p, reference, before).drifted
    assert domain_classifier_auc(p, reference, after).auc > 0.8


NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
STATE = ModelState(champion_version=1, champion_since=NOW - timedelta(days=1))


def _checks(*aucs: float | None) -> list[CheckView]:
    n = len(aucs)
    return [
        CheckView(
            at=NOW - (n - 1 - i) * timedelta(minutes=30),
            status="ok",
            champion_version=1,
            multivariate_auc=auc,
        )
        for i, auc in enumerate(aucs)
    ]


def test_the_multivariate_drift_trigger_needs_its_streak() -> None:
    p = policy(triggers=[{"multivariate_drift": {"above": 0.6, "for": 2}}])
    fired = decide(p, _checks(0.5, 0.7, 0.72), STATE, NOW)
    assert fired.fire and fired.triggers == ["multivariate_drift"]
    assert fired.reasons == ["multivariate drift AUC 0.720 > 0.6 for 2/2 checks"]
    held = decide(p, _checks(0.7, 0.59), STATE, NOW)
    assert not held.fire
    assert held.reasons == ["multivariate drift AUC 0.590 vs 0.6 for 1/2 checks"]
    unmeasured = decide(p, _checks(0.7, None), STATE, NOW)
    assert not unmeasured.fire
    assert unmeasured.reasons == ["multivariate drift: not measured in enough checks"]


def test_explain_describes_the_trigger_and_the_signal() -> None:
    p = policy(monitor=ON, triggers=[{"multivariate_drift": {"above": 0.6, "for": 2}}])
    text = "\n".join(explain(p))
    assert "ROC AUC above 0.6 in 2 consecutive checks (multivariate drift)" in text
    assert "tries to tell up to 1500 reference rows from current ones" in text


@pytest.mark.slow
def test_through_the_loop_the_trigger_fires_after_the_change_and_the_gauges_follow(
    sqlite_registry: Store, metrics: Metrics
) -> None:
    frame = stream("correlation", change_at=CHANGE, hours=10, every=timedelta(seconds=10), seed=23)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(minutes=30)))
    p = policy(
        monitor=ON,
        triggers=[{"multivariate_drift": {"above": 0.6, "for": 2}}],
        guards={"max_runs_per_day": 1},
    )
    clock = SimulatedClock(START + timedelta(hours=4))
    loop = ModelLoop(p, sqlite_registry, metrics, source=source)
    fired = []
    while clock.now() <= START + timedelta(hours=9):
        outcome = loop.cycle(clock.now())
        if outcome.decision is not None and outcome.decision.fire:
            fired.append((clock.now(), outcome.decision.triggers))
        clock.advance(p.monitor.every)
    assert fired and all(at > CHANGE for at, _ in fired), fired
    assert fired[0][1] == ["multivariate_drift"]
    last = sqlite_registry.checks(p.model, limit=1)[-1]
    sample = metrics.registry.get_sample_value
    assert sample("reoptd_multivariate_drift_auc", {"model": p.model}) == pytest.approx(
        last.signals["multivariate"]["auc"]
    )
    assert sample("reoptd_multivariate_drifted", {"model": p.model}) == int(
        last.signals["multivariate"]["drifted"]
    )
    assert sample("reoptd_target_drift_score", {"model": p.model}) == pytest.approx(
        last.signals["target_drift"]["score"]
    )
    assert sample("reoptd_target_drifted", {"model": p.model}) == 0
