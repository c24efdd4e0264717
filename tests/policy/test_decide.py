"""``decide``: a pure function of policy, check history, model state and a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from reoptd.policy import CheckView, Decision, ModelState, Policy, decide

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
EVERY = timedelta(minutes=30)


def policy_with(
    base: Policy, triggers: list[dict[str, Any]], guards: dict[str, Any] | None = None
) -> Policy:
    """``base`` with other triggers and guards, validated like a policy file."""
    data = base.model_dump(by_alias=True)
    data["triggers"] = triggers
    data["guards"] = guards or {}
    return Policy.model_validate(data)


def drift_checks(
    *shares: float | None, version: int | None = 1, status: str = "ok"
) -> list[CheckView]:
    """One check per share, oldest first, the newest one just before NOW."""
    n = len(shares)
    return [
        CheckView(
            at=NOW - (n - i) * EVERY, status=status, champion_version=version, drift_share=share
        )
        for i, share in enumerate(shares)
    ]


def metric_check(
    f1: float, labelled: int, *, at: datetime = NOW - EVERY, version: int = 1
) -> CheckView:
    return CheckView(
        at=at, status="ok", champion_version=version, metrics={"f1": f1}, labelled_rows=labelled
    )


STATE = ModelState(champion_version=1, champion_since=NOW - timedelta(days=1))
DRIFT_2 = [{"drift_share": {"above": 0.3, "for": 2}}]
DRIFT_3 = [{"drift_share": {"above": 0.3, "for": 3}}]


# -- drift_share -----------------------------------------------------------------------------


def test_drift_fires_when_last_n_checks_are_above(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    decision = decide(policy, drift_checks(0.1, 0.5, 0.42), STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["drift_share"]
    assert decision.trigger == "drift_share"
    assert decision.reasons == ["drift_share 0.42 > 0.30 for 2/2 checks"]


def test_drift_does_not_fire_when_one_in_the_streak_is_below(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_3)
    decision = decide(policy, drift_checks(0.9, 0.5, 0.1, 0.5, 0.6), STATE, NOW)
    assert decision.fire is False
    assert decision.triggers == []
    assert decision.trigger == "none"
    assert decision.reasons == ["drift_share 0.60 vs 0.30 for 2/3 checks"]


def test_drift_does_not_fire_when_only_the_older_checks_are_above(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    decision = decide(policy, drift_checks(0.9, 0.9, 0.9, 0.2), STATE, NOW)
    assert decision.fire is False
    assert "1/2 checks" in decision.summary


def test_drift_needs_n_checks(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    assert decide(policy, drift_checks(0.9), STATE, NOW).fire is False
    assert decide(policy, [], STATE, NOW).fire is False
    assert decide(policy, drift_checks(0.9, 0.9), STATE, NOW).fire is True


def test_drift_at_threshold_is_not_above(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    assert decide(policy, drift_checks(0.3, 0.3), STATE, NOW).fire is False


def test_drift_check_without_share_breaks_the_streak(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    assert decide(policy, drift_checks(0.9, 0.9, None), STATE, NOW).fire is False


def test_checks_of_an_older_champion_are_ignored(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    old = drift_checks(0.9, 0.9, 0.9, version=1)
    state = ModelState(champion_version=2, champion_since=NOW - timedelta(hours=1))
    # after promoting v2 the streak restarts: one v2 check is not two
    first = [*old, CheckView(NOW - timedelta(minutes=20), "ok", 2, drift_share=0.9)]
    decision = decide(policy, first, state, NOW)
    assert decision.fire is False
    assert decision.reasons == ["drift_share 0.90 vs 0.30 for 1/2 checks"]
    second = [*first, CheckView(NOW - timedelta(minutes=5), "ok", 2, drift_share=0.8)]
    assert decide(policy, second, state, NOW).fire is True
    # and the old checks count for the old champion only
    assert decide(policy, old, STATE, NOW).fire is True


def test_failed_and_skipped_checks_are_ignored(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, DRIFT_2)
    history = [
        *drift_checks(0.5),
        CheckView(NOW - timedelta(minutes=25), "failed", 1, drift_share=0.0),
        CheckView(NOW - timedelta(minutes=20), "skipped", 1),
        *drift_checks(0.6),
    ]
    decision = decide(policy, history, STATE, NOW)
    assert decision.fire is True
    assert decision.reasons == ["drift_share 0.60 > 0.30 for 2/2 checks"]
    only_bad = [
        *drift_checks(0.9, 0.9, status="failed"),
        *drift_checks(0.9, 0.9, status="skipped"),
    ]
    assert decide(policy, only_bad, STATE, NOW).fire is False


# -- metric ----------------------------------------------------------------------------------


METRIC = [{"metric": {"name": "f1", "below": 0.45, "min_labels": 200}}]


def test_metric_below_floor_fires_with_enough_labels(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, METRIC)
    decision = decide(policy, [metric_check(0.3, labelled=200)], STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["metric"]
    assert decision.reasons == ["f1 0.300 < 0.45 floor"]


def test_metric_below_floor_waits_for_labels(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, METRIC)
    decision = decide(policy, [metric_check(0.3, labelled=199)], STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["f1: not enough labels (199 < 200)"]


def test_metric_above_floor_does_not_fire(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, METRIC)
    decision = decide(policy, [metric_check(0.6, labelled=1000)], STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["f1 0.600 vs 0.45 floor"]


def test_metric_uses_the_latest_check_of_the_champion(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, METRIC)
    history = [metric_check(0.2, 500, at=NOW - 2 * EVERY), metric_check(0.7, 500)]
    assert decide(policy, history, STATE, NOW).fire is False
    old_champion = [metric_check(0.2, 500, version=0)]
    assert decide(policy, old_champion, STATE, NOW).fire is False


def test_metric_for_n_checks(demo_policy: Policy) -> None:
    policy = policy_with(
        demo_policy, [{"metric": {"name": "f1", "below": 0.45, "min_labels": 100, "for": 2}}]
    )
    one = [metric_check(0.3, 500)]
    assert decide(policy, one, STATE, NOW).fire is False
    two = [metric_check(0.3, 500, at=NOW - 2 * EVERY), metric_check(0.4, 500)]
    assert decide(policy, two, STATE, NOW).fire is True
    mixed = [metric_check(0.5, 500, at=NOW - 2 * EVERY), metric_check(0.4, 500)]
    assert decide(policy, mixed, STATE, NOW).fire is False


def test_metric_name_defaults_to_promotion_metric(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, [{"metric": {"below": 0.45, "min_labels": 10}}])
    assert policy.metric == "f1"
    assert decide(policy, [metric_check(0.1, 50)], STATE, NOW).fire is True


def test_metric_ceiling(demo_policy: Policy) -> None:
    data = demo_policy.model_dump(by_alias=True)
    data["task"] = "regression"
    data["promote"]["metric"] = "rmse"
    data["triggers"] = [{"metric": {"name": "rmse", "above": 5.0, "min_labels": 10}}]
    data["guards"] = {}
    policy = Policy.model_validate(data)
    high = CheckView(NOW - EVERY, "ok", 1, metrics={"rmse": 7.5}, labelled_rows=50)
    low = CheckView(NOW - EVERY, "ok", 1, metrics={"rmse": 2.5}, labelled_rows=50)
    decision = decide(policy, [high], STATE, NOW)
    assert decision.fire is True
    assert decision.reasons == ["rmse 7.500 > 5.0 ceiling"]
    assert decide(policy, [low], STATE, NOW).fire is False


# -- max_age ---------------------------------------------------------------------------------


MAX_AGE = [{"max_age": "7d"}]


def test_max_age_fires_for_an_old_champion(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE)
    state = ModelState(champion_version=1, champion_since=NOW - timedelta(days=8))
    decision = decide(policy, [], state, NOW)
    assert decision.fire is True
    assert decision.triggers == ["max_age"]
    assert decision.reasons == ["champion age 8.0d >= max_age 1w"]


def test_max_age_does_not_fire_before(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE)
    young = ModelState(champion_version=1, champion_since=NOW - timedelta(days=6, hours=23))
    decision = decide(policy, [], young, NOW)
    assert decision.fire is False
    assert decision.reasons == ["champion age 7.0d < max_age 1w"]
    exactly = ModelState(champion_version=1, champion_since=NOW - timedelta(days=7))
    assert decide(policy, [], exactly, NOW).fire is True


def test_max_age_without_a_champion(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE)
    decision = decide(policy, [], ModelState(None, None), NOW)
    assert decision.fire is False
    assert decision.reasons == ["max_age: no champion yet"]


# -- guards ----------------------------------------------------------------------------------


OLD = ModelState(champion_version=1, champion_since=NOW - timedelta(days=30))


def test_cooldown_blocks_a_firing_trigger(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE, {"cooldown": "1h"})
    state = ModelState(1, OLD.champion_since, last_run_at=NOW - timedelta(minutes=30))
    decision = decide(policy, [], state, NOW)
    assert decision.fire is False
    assert decision.triggers == ["max_age"]  # the trigger fired; the guard held it back
    assert any("cooldown" in r for r in decision.reasons)
    assert "cooldown: last run 30m ago < 1h" in decision.reasons


def test_cooldown_allows_after_it_passed(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE, {"cooldown": "1h"})
    for since in (timedelta(hours=1), timedelta(hours=2)):
        state = ModelState(1, OLD.champion_since, last_run_at=NOW - since)
        decision = decide(policy, [], state, NOW)
        assert decision.fire is True
        assert "cooldown ok" in decision.reasons


def test_no_cooldown_and_no_previous_run(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE, {"cooldown": "1h"})
    assert decide(policy, [], OLD, NOW).fire is True  # never ran: nothing to cool down from
    no_guard = policy_with(demo_policy, MAX_AGE)
    state = ModelState(1, OLD.champion_since, last_run_at=NOW - timedelta(seconds=1))
    decision = decide(no_guard, [], state, NOW)
    assert decision.fire is True
    assert not any("cooldown" in r for r in decision.reasons)


def test_max_runs_per_day_blocks(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE, {"max_runs_per_day": 3})
    full = ModelState(1, OLD.champion_since, runs_last_day=3)
    decision = decide(policy, [], full, NOW)
    assert decision.fire is False
    assert "budget: 3 runs in the last 24h >= max_runs_per_day 3" in decision.reasons
    room = ModelState(1, OLD.champion_since, runs_last_day=2)
    decision = decide(policy, [], room, NOW)
    assert decision.fire is True
    assert "budget ok (2/3 today)" in decision.reasons


def test_guards_are_not_reported_when_nothing_fired(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, MAX_AGE, {"cooldown": "1h", "max_runs_per_day": 1})
    state = ModelState(1, NOW - timedelta(days=1), last_run_at=NOW, runs_last_day=5)
    decision = decide(policy, [], state, NOW)
    assert decision.fire is False
    assert len(decision.reasons) == 1
    assert "cooldown" not in decision.summary and "budget" not in decision.summary


# -- the whole demo policy -------------------------------------------------------------------


def test_no_triggers_never_fires(demo_policy: Policy) -> None:
    policy = policy_with(demo_policy, [])
    decision = decide(policy, drift_checks(1.0, 1.0, 1.0), OLD, NOW)
    assert decision == Decision(False, [], ["no triggers configured"])


def test_demo_policy_reasons_read_as_sentences(demo_policy: Policy) -> None:
    history = [
        CheckView(NOW - 2 * EVERY, "ok", 1, drift_share=0.5, metrics={"f1": 0.5}),
        CheckView(NOW - EVERY, "ok", 1, drift_share=0.42, metrics={"f1": 0.40}, labelled_rows=250),
    ]
    state = ModelState(1, NOW - timedelta(days=2), last_run_at=NOW - timedelta(hours=5))
    decision = decide(demo_policy, history, state, NOW)
    assert decision.fire is True
    assert decision.triggers == ["drift_share", "metric"]
    assert decision.trigger == "drift_share"
    assert decision.reasons == [
        "drift_share 0.42 > 0.30 for 2/2 checks",
        "f1 0.400 < 0.45 floor",
        "champion age 2.0d < max_age 1w",
        "cooldown ok",
        "budget ok (0/12 today)",
    ]
    assert decision.summary == "; ".join(decision.reasons)


def test_decide_is_pure(demo_policy: Policy) -> None:
    history = drift_checks(0.5, 0.5)
    first = decide(demo_policy, history, STATE, NOW)
    second = decide(demo_policy, list(history), STATE, NOW)
    assert first == second
    assert history == drift_checks(0.5, 0.5)


@pytest.mark.parametrize(
    ("now", "fire"),
    [
        (NOW, False),
        (NOW + timedelta(days=5, hours=23), False),
        (NOW + timedelta(days=6), True),
    ],
)
def test_decision_depends_only_on_now(demo_policy: Policy, now: datetime, fire: bool) -> None:
    state = ModelState(1, NOW - timedelta(days=1))
    assert decide(demo_policy, [], state, now).fire is fire
