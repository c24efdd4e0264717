"""The built-in metrics beyond f1 and rmse, and a business value from the policy's costs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from reoptd.errors import PolicyError
from reoptd.monitor import business_value, score
from reoptd.policy import METRICS, explain, parse_policy
from reoptd.settings import DEMO_POLICY

Y = np.array([1, 0, 1, 1, 0, 0, 1, 0])
PRED = np.array([1, 0, 0, 1, 1, 0, 1, 0])
PROBA = np.array([0.9, 0.2, 0.4, 0.8, 0.6, 0.1, 0.7, 0.3])


def test_classification_metrics_match_their_definitions() -> None:
    assert score("precision", Y, PRED, None) == pytest.approx(3 / 4)  # tp 3, fp 1
    assert score("recall", Y, PRED, None) == pytest.approx(3 / 4)  # tp 3, fn 1
    assert score("brier", Y, PRED, PROBA) == pytest.approx(np.mean((PROBA - Y) ** 2))
    expected = -np.mean(Y * np.log(PROBA) + (1 - Y) * np.log(1 - PROBA))
    assert score("log_loss", Y, PRED, PROBA) == pytest.approx(expected)
    assert 0.9 < score("average_precision", Y, PRED, PROBA) <= 1.0
    assert np.isnan(score("log_loss", Y, PRED, None))  # no scores: not computed
    assert not METRICS["classification"]["log_loss"] and not METRICS["classification"]["brier"]


def test_mape_and_the_business_value() -> None:
    assert score("mape", np.array([100.0, 200.0]), np.array([110.0, 180.0]), None) == (
        pytest.approx(0.1)
    )
    costs = {"tp": 50, "fp": -5, "fn": -50, "tn": 0}
    # tp 3, fp 1, fn 1, tn 3 over 8 rows
    assert business_value(Y, PRED, costs) == pytest.approx((150 - 5 - 50) / 8)
    assert score("value", Y, PRED, None, costs) == pytest.approx(95 / 8)
    with pytest.raises(ValueError, match=r"promote\.costs"):
        score("value", Y, PRED, None)


def test_the_policy_takes_value_with_costs_and_explains_them() -> None:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["promote"]["metric"] = "value"
    with pytest.raises(PolicyError, match=r"needs promote\.costs"):
        parse_policy(yaml.safe_dump(data))
    data["promote"]["costs"] = {"tp": 50, "fp": -5, "fn": -50}
    data["triggers"] = [{"metric": {"name": "recall", "below": 0.5}}]
    policy = parse_policy(yaml.safe_dump(data))
    assert policy.promote.costs is not None and policy.promote.costs.fn == -50
    assert policy.higher_is_better("value")
    assert any("-50 per false negative" in line for line in explain(policy))
