"""``decide`` for the trigger kinds and guards beyond drift_share, metric floors and max_age.

Every test is a pure function call at fixed, timezone-aware datetimes; policies are the demo
policy with other triggers and guards, validated like a policy file.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import yaml

from reoptd.policy import CheckView, Decision, ModelState, Policy, decide, parse_policy
from reoptd.settings import DEMO_POLICY

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
EVERY = timedelta(minutes=30)
DEMO: dict[str, Any] = yaml.safe_load(DEMO_POLICY.read_text())
STATE = ModelState(champion_version=1, champion_since=NOW - timedelta(days=1))


def make_policy(
    triggers: list[dict[str, Any]] | dict[str, Any],
    guards: dict[str, Any] | None = None,
    *,
    regression: bool = False,
) -> Policy:
    """The demo policy with these triggers and guards (and, optionally, as a regressor)."""
    data = copy.deepcopy(DEMO)
    data["triggers"] = triggers
    data["guards"] = guards or {}
    if regression:
        data["task"] = "regression"
        data["promote"]["metric"] = "rmse"
        data["train"]["estimator"] = "sklearn.ensemble.HistGradientBoostingRegressor"
    return Policy.model_validate(data)


def checks(*views: dict[str, Any], version: int = 1, end: datetime = NOW) -> list[CheckView]:
    """One ok check per dict of CheckView fields, oldest first, the newest one at ``end``."""
    n = len(views)
    return [
        CheckView(at=end - (n - 1 - i) * EVERY, status="ok", champion_version=version, **view)
        for i, view in enumerate(views)
    ]


def state_with(**changes: Any) -> ModelState:
    fields = {"champion_version": 1, "champion_since": NOW - timedelta(days=1), **changes}
    return ModelState(**fields)


# -- drift_features --------------------------------------------------------------------------


CRITICAL = [{"drift_features": {"features": ["tenure", "contract"], "for": 2}}]


def test_drift_features_fires_when_a_critical_feature_drifts_in_each_of_the_last_n() -> None:
    policy = make_policy(CRITICAL)
    history = checks({"drifted": ("tenure",)}, {"drifted": ("contract", "monthly_charges")})
    decision = decide(policy, history, STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["drift_features"]
    assert decision.reasons == ["critical features drifted: contract (2/2 checks)"]


def test_drift_features_names_every_critical_feature_that_drifted() -> None:
    policy = make_policy(CRITICAL)
    both = ("contract", "tenure", "support_calls")
    decision = decide(policy, checks({"drifted": both}, {"drifted": both}), STATE, NOW)
    assert decision.fire is True
    assert decision.reasons == ["critical features drifted: contract, tenure (2/2 checks)"]


def test_drift_features_ignores_other_features() -> None:
    policy = make_policy(CRITICAL)
    others = ("monthly_charges", "support_calls", "payment_method")
    decision = decide(policy, checks({"drifted": others}, {"drifted": others}), STATE, NOW)
    assert decision.fire is False
    assert decision.triggers == []
    assert decision.reasons == ["critical features drifted: none (0/2 checks)"]


def test_drift_features_needs_the_whole_streak() -> None:
    policy = make_policy(CRITICAL)
    broken = checks({"drifted": ("tenure",)}, {"drifted": ()}, {"drifted": ("tenure",)})
    decision = decide(policy, broken, STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["critical features drifted: tenure (1/2 checks)"]
    # only older checks drifted: the last two decide
    old = checks({"drifted": ("tenure",)}, {"drifted": ("tenure",)}, {"drifted": ()})
    assert decide(policy, old, STATE, NOW).fire is False
    # fewer checks than `for`
    assert decide(policy, checks({"drifted": ("tenure",)}), STATE, NOW).fire is False
    assert decide(policy, [], STATE, NOW).fire is False


def test_drift_features_for_defaults_to_one_check() -> None:
    policy = make_policy([{"drift_features": {"features": ["support_calls"]}}])
    assert policy.triggers[0].drift_features is not None
    assert policy.triggers[0].drift_features.for_ == 1
    history = checks({"drifted": ()}, {"drifted": ("support_calls",)})
    assert decide(policy, history, STATE, NOW).fire is True
    assert decide(policy, history[:1], STATE, NOW).fire is False


def test_drift_features_counts_only_checks_of_the_champion() -> None:
    policy = make_policy(CRITICAL)
    old = checks({"drifted": ("tenure",)}, {"drifted": ("tenure",)}, version=1)
    state = state_with(champion_version=2)
    assert decide(policy, old, state, NOW).fire is False
    assert decide(policy, old, STATE, NOW).fire is True


# -- prediction_drift ------------------------------------------------------------------------


PREDICTION = [{"prediction_drift": {"for": 2}}]


def pred(*flags: bool | None) -> list[CheckView]:
    return checks(*({"prediction_drift": f} for f in flags))


def test_prediction_drift_fires_after_n_drifted_checks() -> None:
    policy = make_policy(PREDICTION)
    decision = decide(policy, pred(False, True, True), STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["prediction_drift"]
    assert decision.reasons == ["prediction drift in 2/2 checks"]


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ((True, False), "prediction drift in 1/2 checks"),
        ((False, True), "prediction drift in 1/2 checks"),
        ((False, False), "prediction drift in 0/2 checks"),
        ((True, None), "prediction drift in 1/2 checks"),
        ((None, True), "prediction drift in 1/2 checks"),
        ((None, None), "prediction drift in 0/2 checks"),
        ((True,), "prediction drift in 1/2 checks"),
        ((True, True, False), "prediction drift in 1/2 checks"),
    ],
)
def test_prediction_drift_does_not_fire(flags: tuple[bool | None, ...], reason: str) -> None:
    decision = decide(make_policy(PREDICTION), pred(*flags), STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == [reason]


def test_prediction_drift_unknown_is_not_drift() -> None:
    policy = make_policy([{"prediction_drift": {}}])
    assert policy.triggers[0].kind == "prediction_drift"
    assert decide(policy, pred(None), STATE, NOW).fire is False
    assert decide(policy, pred(False), STATE, NOW).fire is False
    assert decide(policy, pred(True), STATE, NOW).fire is True


# -- metric: drop against the champion's validation metric ------------------------------------


def labelled(value: float, rows: int = 500, name: str = "f1") -> dict[str, Any]:
    return {"metrics": {name: value}, "labelled_rows": rows}


F1_DROP = [{"metric": {"name": "f1", "drop": 0.1, "min_labels": 100}}]
VALIDATED = state_with(champion_metrics={"f1": 0.8, "accuracy": 0.9})


def test_metric_drop_fires_when_worse_than_validation_by_more_than_drop() -> None:
    policy = make_policy(F1_DROP)
    decision = decide(policy, checks(labelled(0.65)), VALIDATED, NOW)
    assert decision.fire is True
    assert decision.triggers == ["metric"]
    (reason,) = decision.reasons
    assert reason == "f1 0.650 is 0.150 below validation 0.800 (drop limit 0.1)"


def test_metric_drop_within_tolerance_does_not_fire() -> None:
    policy = make_policy(F1_DROP)
    decision = decide(policy, checks(labelled(0.75)), VALIDATED, NOW)
    assert decision.fire is False
    assert decision.reasons == ["f1 0.750 is 0.050 below validation 0.800 (drop limit 0.1)"]
    better = decide(policy, checks(labelled(0.95)), VALIDATED, NOW)
    assert better.fire is False
    assert "0.150 above validation" in better.summary


def test_metric_drop_of_exactly_drop_is_not_more() -> None:
    # 0.75 - 0.5 == 0.25 exactly in binary floating point
    policy = make_policy([{"metric": {"name": "f1", "drop": 0.25, "min_labels": 1}}])
    state = state_with(champion_metrics={"f1": 0.75})
    assert decide(policy, checks(labelled(0.5)), state, NOW).fire is False
    assert decide(policy, checks(labelled(0.499)), state, NOW).fire is True


def test_metric_drop_needs_the_champions_validation_metric() -> None:
    policy = make_policy(F1_DROP)
    for state in (STATE, state_with(champion_metrics={"accuracy": 0.9})):
        decision = decide(policy, checks(labelled(0.1)), state, NOW)
        assert decision.fire is False
        assert decision.reasons == ["f1: the champion has no validation f1 to compare with"]


def test_metric_drop_respects_min_labels() -> None:
    policy = make_policy(F1_DROP)
    decision = decide(policy, checks(labelled(0.1, rows=99)), VALIDATED, NOW)
    assert decision.fire is False
    assert decision.reasons == ["f1: not enough labels (99 < 100)"]
    assert decide(policy, checks(labelled(0.1, rows=100)), VALIDATED, NOW).fire is True


def test_metric_drop_defaults_to_promotion_metric_and_other_names() -> None:
    default = make_policy([{"metric": {"drop": 0.1, "min_labels": 10}}])
    assert default.metric == "f1"
    assert decide(default, checks(labelled(0.6)), VALIDATED, NOW).fire is True
    accuracy = make_policy([{"metric": {"name": "accuracy", "drop": 0.05, "min_labels": 10}}])
    decision = decide(accuracy, checks(labelled(0.8, name="accuracy")), VALIDATED, NOW)
    assert decision.fire is True
    assert "accuracy 0.800" in decision.summary and "validation 0.900" in decision.summary
    # an f1 measurement says nothing about accuracy
    assert decide(accuracy, checks(labelled(0.1)), VALIDATED, NOW).fire is False


def test_metric_drop_for_n_checks() -> None:
    policy = make_policy([{"metric": {"name": "f1", "drop": 0.1, "min_labels": 10, "for": 2}}])
    assert decide(policy, checks(labelled(0.5)), VALIDATED, NOW).fire is False
    assert decide(policy, checks(labelled(0.5), labelled(0.6)), VALIDATED, NOW).fire is True
    assert decide(policy, checks(labelled(0.75), labelled(0.5)), VALIDATED, NOW).fire is False


def test_metric_drop_for_rmse_means_higher_is_worse() -> None:
    policy = make_policy(
        [{"metric": {"name": "rmse", "drop": 0.5, "min_labels": 10}}], regression=True
    )
    assert policy.higher_is_better("rmse") is False
    state = state_with(champion_metrics={"rmse": 2.0})
    worse = decide(policy, checks(labelled(3.0, name="rmse")), state, NOW)
    assert worse.fire is True
    assert worse.reasons == ["rmse 3.000 is 1.000 above validation 2.000 (drop limit 0.5)"]
    better = decide(policy, checks(labelled(1.0, name="rmse")), state, NOW)
    assert better.fire is False
    assert better.reasons == ["rmse 1.000 is 1.000 below validation 2.000 (drop limit 0.5)"]
    slightly = decide(policy, checks(labelled(2.4, name="rmse")), state, NOW)
    assert slightly.fire is False


def test_metric_drop_for_r2_in_a_regression_means_lower_is_worse() -> None:
    policy = make_policy(
        [{"metric": {"name": "r2", "drop": 0.1, "min_labels": 10}}], regression=True
    )
    state = state_with(champion_metrics={"r2": 0.9, "rmse": 2.0})
    assert decide(policy, checks(labelled(0.7, name="r2")), state, NOW).fire is True
    assert decide(policy, checks(labelled(0.95, name="r2")), state, NOW).fire is False


# -- estimated_metric ------------------------------------------------------------------------


ESTIMATED = [{"estimated_metric": {"below": 0.6, "for": 2}}]


def estimate(value: float | None, name: str = "f1") -> dict[str, Any]:
    return {"estimated": {} if value is None else {name: value}}


def test_estimated_metric_fires_below_the_floor_for_n_checks() -> None:
    policy = make_policy(ESTIMATED)
    decision = decide(policy, checks(estimate(0.5), estimate(0.55)), STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["estimated_metric"]
    assert decision.reasons == ["estimated f1 0.550 < 0.6 floor"]


def test_estimated_metric_does_not_fire_above_or_for_too_short() -> None:
    policy = make_policy(ESTIMATED)
    decision = decide(policy, checks(estimate(0.5), estimate(0.7)), STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["estimated f1 0.700 vs 0.6 floor"]
    assert decide(policy, checks(estimate(0.5), estimate(0.6)), STATE, NOW).fire is False
    short = decide(policy, checks(estimate(0.1)), STATE, NOW)
    assert short.fire is False
    assert short.reasons == ["estimated f1: no estimate available"]


@pytest.mark.parametrize(
    "history",
    [
        [],
        checks(estimate(None), estimate(None)),
        checks(estimate(0.1), estimate(None)),
        checks(estimate(0.1, name="accuracy"), estimate(0.1, name="accuracy")),
        # measured metrics are not estimates
        checks(labelled(0.1), labelled(0.1)),
    ],
)
def test_estimated_metric_without_an_estimate(history: list[CheckView]) -> None:
    decision = decide(make_policy(ESTIMATED), history, STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["estimated f1: no estimate available"]


def test_estimated_metric_by_name() -> None:
    policy = make_policy([{"estimated_metric": {"name": "roc_auc", "below": 0.7}}])
    decision = decide(policy, checks(estimate(0.65, name="roc_auc")), STATE, NOW)
    assert decision.fire is True
    assert decision.reasons == ["estimated roc_auc 0.650 < 0.7 floor"]
    assert decide(policy, checks(estimate(0.65)), STATE, NOW).fire is False


# -- new_rows --------------------------------------------------------------------------------


NEW_ROWS = [{"new_rows": {"at_least": 1000}}]


def test_new_rows_fires_at_the_threshold() -> None:
    policy = make_policy(NEW_ROWS)
    for rows in (1000, 25_000):
        decision = decide(policy, checks({"new_rows": rows}), STATE, NOW)
        assert decision.fire is True
        assert decision.triggers == ["new_rows"]
        assert decision.reasons == [f"{rows} new rows >= 1000"]


def test_new_rows_below_the_threshold_does_not_fire() -> None:
    policy = make_policy(NEW_ROWS)
    decision = decide(policy, checks({"new_rows": 999}), STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["999 new rows < 1000"]


def test_new_rows_reads_the_latest_check_only() -> None:
    policy = make_policy(NEW_ROWS)
    history = checks({"new_rows": 5000}, {"new_rows": 10})
    decision = decide(policy, history, STATE, NOW)
    assert decision.fire is False
    assert decision.reasons == ["10 new rows < 1000"]
    uncounted = decide(policy, checks({"new_rows": 5000}, {}), STATE, NOW)
    assert uncounted.fire is False
    assert uncounted.reasons == ["new rows: not counted yet"]
    assert decide(policy, [], STATE, NOW).reasons == ["new rows: not counted yet"]


def test_new_rows_of_the_previous_champion_do_not_count() -> None:
    policy = make_policy(NEW_ROWS)
    history = checks({"new_rows": 5000}, version=1)
    assert decide(policy, history, state_with(champion_version=2), NOW).fire is False
    assert decide(policy, history, STATE, NOW).fire is True


# -- schedule --------------------------------------------------------------------------------


DAILY = [{"schedule": "0 3 * * *"}]


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    """A time on 1 March 2026 (a Sunday) or a later day of that month, in UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def timeline(*times: datetime) -> list[CheckView]:
    return [CheckView(at=t, status="ok", champion_version=1) for t in times]


def test_schedule_fires_when_the_cron_time_passed_since_the_previous_check() -> None:
    policy = make_policy(DAILY)
    now = at(3, 15)
    decision = decide(policy, timeline(at(2, 15), at(2, 45), now), STATE, now)
    assert decision.fire is True
    assert decision.triggers == ["schedule"]
    assert decision.reasons == ["schedule '0 3 * * *' was due at 2026-03-01 03:00 UTC"]


def test_schedule_does_not_fire_before_the_cron_time() -> None:
    policy = make_policy(DAILY)
    now = at(2, 45)
    decision = decide(policy, timeline(at(2, 15), now), STATE, now)
    assert decision.fire is False
    assert decision.reasons == ["schedule '0 3 * * *' next at 2026-03-01 03:00 UTC"]


def test_schedule_fires_once_per_cron_time() -> None:
    policy = make_policy(DAILY)
    # the check after the one that fired: 03:00 is not after 03:15
    now = at(3, 45)
    decision = decide(policy, timeline(at(2, 45), at(3, 15), now), STATE, now)
    assert decision.fire is False
    assert decision.reasons == ["schedule '0 3 * * *' next at 2026-03-02 03:00 UTC"]


def test_schedule_boundaries_after_previous_and_at_or_before_now() -> None:
    policy = make_policy(DAILY)
    # a check exactly at the cron time fires ...
    assert decide(policy, timeline(at(2, 30), at(3)), STATE, at(3)).fire is True
    # ... and the next one does not: the cron time is not after that previous check
    assert decide(policy, timeline(at(3), at(3, 30)), STATE, at(3, 30)).fire is False
    # one microsecond short of it does not fire
    just_before = at(3) - timedelta(microseconds=1)
    assert decide(policy, timeline(at(2, 30), just_before), STATE, just_before).fire is False


def test_schedule_across_midnight_and_long_gaps() -> None:
    policy = make_policy(DAILY)
    now = at(3, 10, day=2)
    assert decide(policy, timeline(at(23, 50), now), STATE, now).fire is True
    # days without checks: still fires (once), naming the first missed cron time
    late = at(12, day=5)
    decision = decide(policy, timeline(at(23, 50), late), STATE, late)
    assert decision.fire is True
    assert decision.reasons == ["schedule '0 3 * * *' was due at 2026-03-02 03:00 UTC"]


def test_schedule_without_a_previous_check_fires_only_exactly_on_time() -> None:
    policy = make_policy(DAILY)
    assert decide(policy, timeline(at(3)), STATE, at(3)).fire is True
    assert decide(policy, [], STATE, at(3)).fire is True
    assert decide(policy, timeline(at(3, 1)), STATE, at(3, 1)).fire is False
    assert decide(policy, [], STATE, at(4)).fire is False


def test_schedule_previous_check_may_be_of_the_previous_champion() -> None:
    # the check at 02:45 ran against champion 1; champion 2 was promoted since
    policy = make_policy(DAILY)
    now = at(3, 15)
    history = [*timeline(at(2, 15), at(2, 45)), CheckView(now, "ok", 2)]
    decision = decide(policy, history, state_with(champion_version=2), now)
    assert decision.fire is True
    previous = [*timeline(at(2, 45)), CheckView(at(3, 5), "ok", 1), CheckView(now, "ok", 2)]
    assert decide(policy, previous, state_with(champion_version=2), now).fire is False


def test_schedule_is_in_utc_and_knows_weekday_names() -> None:
    policy = make_policy([{"schedule": "30 3 * * sun"}])
    sunday, monday = at(4), at(4, day=2)
    assert decide(policy, timeline(at(3), sunday), STATE, sunday).fire is True
    decision = decide(policy, timeline(at(3, day=2), monday), STATE, monday)
    assert decision.fire is False
    assert decision.reasons == ["schedule '30 3 * * sun' next at 2026-03-08 03:30 UTC"]
    # a check at 03:30 in UTC+2 is 01:30 UTC: not yet due
    plus_two = datetime(2026, 3, 1, 3, 30, tzinfo=timezone(timedelta(hours=2)))
    assert decide(policy, timeline(at(1), plus_two), STATE, plus_two).fire is False


# -- combine: all ----------------------------------------------------------------------------


BOTH = [{"drift_share": {"above": 0.3}}, {"new_rows": {"at_least": 100}}]


def combine_all_from_yaml() -> Policy:
    data = copy.deepcopy(DEMO)
    data["triggers"] = {"all": BOTH}
    data["guards"] = {}
    return parse_policy(yaml.safe_dump(data, sort_keys=False), "all.yaml")


def test_triggers_all_in_yaml_sets_combine_all() -> None:
    policy = combine_all_from_yaml()
    assert policy.combine == "all"
    assert [t.kind for t in policy.triggers] == ["drift_share", "new_rows"]
    data = copy.deepcopy(DEMO)
    data["triggers"] = BOTH
    data["combine"] = "all"
    explicit = Policy.model_validate(data | {"guards": {}})
    assert explicit.model_dump(mode="json") == policy.model_dump(mode="json")


def test_combine_all_fires_only_when_every_trigger_fires() -> None:
    policy = combine_all_from_yaml()
    decision = decide(policy, checks({"drift_share": 0.5, "new_rows": 200}), STATE, NOW)
    assert decision.fire is True
    assert decision.triggers == ["drift_share", "new_rows"]
    assert decision.reasons == [
        "drift_share 0.50 > 0.30 for 1/1 checks",
        "200 new rows >= 100",
        "combine all: 2/2 triggers fired",
    ]


@pytest.mark.parametrize(
    "view", [{"drift_share": 0.5, "new_rows": 50}, {"drift_share": 0.1, "new_rows": 200}]
)
def test_combine_all_holds_when_one_trigger_does_not_fire(view: dict[str, Any]) -> None:
    policy = combine_all_from_yaml()
    decision = decide(policy, checks(view), STATE, NOW)
    assert decision.fire is False
    assert decision.triggers == []
    assert decision.reasons[-1] == "combine all: 1/2 triggers fired"
    # the same history fires under `any`
    data = copy.deepcopy(DEMO) | {"triggers": BOTH, "guards": {}}
    any_policy = Policy.model_validate(data)
    assert any_policy.combine == "any"
    assert decide(any_policy, checks(view), STATE, NOW).fire is True


def test_combine_all_when_nothing_fires() -> None:
    policy = combine_all_from_yaml()
    decision = decide(policy, checks({"drift_share": 0.1, "new_rows": 50}), STATE, NOW)
    assert decision.fire is False
    assert len(decision.reasons) == 2
    assert not any("combine all" in r for r in decision.reasons)


def test_combine_all_of_no_triggers_never_fires() -> None:
    policy = make_policy({"all": []})
    assert policy.combine == "all"
    decision = decide(policy, checks({"drift_share": 1.0}), STATE, NOW)
    assert decision == Decision(False, [], ["no triggers configured"])


def test_combine_all_is_still_guarded() -> None:
    policy = make_policy({"all": BOTH}, {"cooldown": "1h"})
    state = state_with(last_run_at=NOW - timedelta(minutes=10))
    decision = decide(policy, checks({"drift_share": 0.5, "new_rows": 200}), state, NOW)
    assert decision.fire is False
    assert decision.triggers == ["drift_share", "new_rows"]
    assert "combine all: 2/2 triggers fired" in decision.reasons
    assert decision.reasons[-1] == "cooldown: last run 10m ago < 1h"


# -- guard: max_compute_per_day --------------------------------------------------------------


MAX_AGE = [{"max_age": "7d"}]
OLD = NOW - timedelta(days=30)


@pytest.mark.parametrize(("seconds", "used"), [(7200, "2.0h"), (9000, "2.5h"), (86400, "1.0d")])
def test_max_compute_per_day_blocks_at_or_over_the_budget(seconds: float, used: str) -> None:
    policy = make_policy(MAX_AGE, {"max_compute_per_day": "2h"})
    state = state_with(champion_since=OLD, compute_last_day=seconds)
    decision = decide(policy, [], state, NOW)
    assert decision.fire is False
    assert decision.triggers == ["max_age"]  # the trigger fired; the guard held it back
    assert decision.reasons[-1] == (
        f"compute: {used} used in the last 24h >= max_compute_per_day 2h"
    )


@pytest.mark.parametrize(("seconds", "used"), [(0.0, "0s"), (1800, "30m"), (3600, "1.0h")])
def test_max_compute_per_day_allows_under_the_budget(seconds: float, used: str) -> None:
    policy = make_policy(MAX_AGE, {"max_compute_per_day": "2h"})
    state = state_with(champion_since=OLD, compute_last_day=seconds)
    decision = decide(policy, [], state, NOW)
    assert decision.fire is True
    assert decision.reasons[-1] == f"compute ok ({used} of 2h today)"


def test_max_compute_per_day_with_the_other_guards() -> None:
    guards = {"cooldown": "1h", "max_runs_per_day": 5, "max_compute_per_day": "90m"}
    policy = make_policy(MAX_AGE, guards)
    ok = state_with(
        champion_since=OLD,
        last_run_at=NOW - timedelta(hours=2),
        runs_last_day=1,
        compute_last_day=600,
    )
    decision = decide(policy, [], ok, NOW)
    assert decision.fire is True
    assert decision.reasons[1:] == [
        "cooldown ok",
        "budget ok (1/5 today)",
        "compute ok (10m of 90m today)",
    ]
    spent = state_with(
        champion_since=OLD,
        last_run_at=NOW - timedelta(hours=2),
        runs_last_day=1,
        compute_last_day=5400,
    )
    decision = decide(policy, [], spent, NOW)
    assert decision.fire is False
    assert decision.reasons[-1] == "compute: 1.5h used in the last 24h >= max_compute_per_day 90m"
    assert "cooldown ok" in decision.reasons and "budget ok (1/5 today)" in decision.reasons


def test_max_compute_per_day_is_not_reported_when_nothing_fired() -> None:
    policy = make_policy(MAX_AGE, {"max_compute_per_day": "2h"})
    state = state_with(compute_last_day=10_000)  # champion 1 day old: max_age does not fire
    decision = decide(policy, [], state, NOW)
    assert decision.fire is False
    assert not any("compute" in r for r in decision.reasons)


def banded(value: float, low: float, high: float, name: str = "f1", level: float = 0.9):
    return {
        "estimated": {name: value},
        "estimated_lower": {name: low},
        "estimated_upper": {name: high},
        "estimated_confidence": level,
    }


def test_estimated_metric_with_confidence_needs_the_whole_band_below_the_floor() -> None:
    policy = make_policy([{"estimated_metric": {"below": 0.6, "confidence": 0.9}}])
    # the estimate is under the floor, but its band reaches over it: a noisy window, no fire
    noisy = decide(policy, checks(banded(0.55, 0.48, 0.63)), STATE, NOW)
    assert noisy.fire is False
    assert noisy.reasons == ["estimated f1 0.550 (90% band 0.480-0.630) vs 0.6 floor"]
    sure = decide(policy, checks(banded(0.55, 0.52, 0.58)), STATE, NOW)
    assert sure.fire is True
    assert sure.reasons == ["estimated f1 0.550 (90% band 0.520-0.580) < 0.6 floor"]
    # a band at a lower level than asked, or none, cannot tell
    low = decide(policy, checks(banded(0.55, 0.52, 0.58, level=0.8)), STATE, NOW)
    assert low.reasons == ["estimated f1: no estimate available"]
    assert decide(policy, checks(estimate(0.4)), STATE, NOW).fire is False
    # a band at a higher level serves a lower confidence
    assert decide(policy, checks(banded(0.55, 0.52, 0.58, level=0.95)), STATE, NOW).fire


def test_estimated_mae_of_a_regressor_fires_above_a_ceiling() -> None:
    trigger = {"estimated_metric": {"name": "mae", "above": 2.0, "confidence": 0.9}}
    policy = make_policy([trigger], regression=True)
    worse = decide(policy, checks(banded(2.6, 2.2, 3.0, name="mae")), STATE, NOW)
    assert worse.fire is True
    assert worse.reasons == ["estimated mae 2.600 (90% band 2.200-3.000) > 2.0 ceiling"]
    assert not decide(policy, checks(banded(2.6, 1.9, 3.0, name="mae")), STATE, NOW).fire
    # a lower-is-better metric under a floor would fire as the model improves: refused
    with pytest.raises(ValueError, match="lower-is-better"):
        make_policy([{"estimated_metric": {"name": "mae", "below": 2.0}}], regression=True)
    with pytest.raises(ValueError, match="exactly one of `below` or `above`"):
        make_policy([{"estimated_metric": {"below": 0.5, "above": 0.9}}])
