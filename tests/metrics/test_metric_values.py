"""Counters count each row once; drift is exported normalised; every metric trigger has a
threshold series."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics, drift_ratio
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store


def test_rows_seen_counts_overlapping_windows_once(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    policy = demo_policy.model_copy(deep=True)
    policy.triggers = []
    loop = ModelLoop(policy, sqlite_registry, metrics)
    for _ in range(4):  # a 2h window every 30m: 720 rows a check, 180 of them new
        loop.cycle(clock.now())
        clock.advance(timedelta(minutes=30))
    seen = metrics.registry.get_sample_value("reoptd_rows_seen_total", {"model": policy.model})
    assert seen == 720 + 3 * 180


def test_drift_ratio_puts_drifted_up_for_p_values_and_distances() -> None:
    assert drift_ratio(0.3, 0.1, "wasserstein") == pytest.approx(3.0)  # 3x its threshold
    assert drift_ratio(0.05, 0.1, "jensenshannon") == pytest.approx(0.5)
    assert drift_ratio(0.01, 0.05, "ks") == pytest.approx(5.0)  # p 0.01 under 0.05: drifted, up
    assert drift_ratio(0.5, 0.05, "ks") == pytest.approx(0.1)
    assert drift_ratio(0.0, 0.05, "ks") == 100.0  # capped


def _with_triggers(triggers: list[dict], metric: str | None = None) -> Policy:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["triggers"] = triggers
    return parse_policy(yaml.safe_dump(data))


def test_every_metric_trigger_kind_exports_where_it_fires() -> None:
    metrics = Metrics()
    policy = _with_triggers(
        [
            {"metric": {"name": "f1", "drop": 0.05}},
            {"metric": {"name": "accuracy", "above": 0.99}},
            {"metric": {"name": "roc_auc", "below": 0.6}},
        ]
    )
    metrics.declare(policy)
    get = metrics.registry.get_sample_value
    model = policy.model
    assert (
        get(
            "reoptd_metric_threshold",
            {"model": model, "metric": "roc_auc", "trigger": "below", "fires": "below"},
        )
        == 0.6
    )
    assert (
        get(
            "reoptd_metric_threshold",
            {"model": model, "metric": "accuracy", "trigger": "above", "fires": "above"},
        )
        == 0.99
    )
    assert get("reoptd_metric_floor", {"model": model, "metric": "roc_auc"}) == 0.6
    # drop: known once the champion's validation metric is (at the first decision)
    assert (
        get(
            "reoptd_metric_threshold",
            {"model": model, "metric": "f1", "trigger": "drop", "fires": "below"},
        )
        is None
    )
    metrics.export_thresholds(policy, {"f1": 0.77})
    drop = get(
        "reoptd_metric_threshold",
        {"model": model, "metric": "f1", "trigger": "drop", "fires": "below"},
    )
    assert abs(drop - 0.72) < 1e-9
    assert abs(get("reoptd_metric_floor", {"model": model, "metric": "f1"}) - 0.72) < 1e-9
