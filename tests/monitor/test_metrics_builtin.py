"""The built-in metrics beyond f1 and rmse, and a business value from the policy's costs."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from reoptd.errors import PolicyError
from reoptd.monitor import business_value, label_metrics, score
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


def _label_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    cases = [
        ("binary", rng.integers(0, 2, 500), rng.integers(0, 2, 500)),
        ("binary, bool predictions", rng.integers(0, 2, 60), rng.random(60) < 0.3),
        ("binary, never predicts 1", rng.integers(0, 2, 40), np.zeros(40, dtype=int)),
        ("binary, all 1 predicted right", np.ones(9, dtype=int), np.ones(9, dtype=int)),
        ("only class 0 anywhere", np.zeros(12, dtype=int), np.zeros(12, dtype=int)),
        ("only class 1 in truth", np.ones(30, dtype=int), rng.integers(0, 2, 30)),
        ("multiclass", rng.integers(0, 4, 700), rng.integers(0, 4, 700)),
        ("multiclass, a class never predicted", rng.integers(0, 5, 300), rng.integers(0, 3, 300)),
        ("multiclass, a class only predicted", rng.integers(0, 3, 300), rng.integers(0, 4, 300)),
        (
            "multiclass, uint labels 3..9",
            rng.integers(3, 10, 250).astype(np.uint8),
            rng.integers(3, 10, 250).astype(np.uint8),
        ),
        ("one row", np.array([2, 0, 1])[:1], np.array([1])),
    ]
    # a target column with late labels is float: its labelled rows hold whole floats
    late = rng.integers(0, 2, 200).astype(float)
    cases.append(("binary, float labels", late, rng.integers(0, 2, 200).astype(float)))
    cases.append(("binary, float truth, int predictions", late, rng.integers(0, 2, 200)))
    cases.append(("multiclass, float labels", rng.integers(0, 4, 90) * 1.0, rng.integers(0, 4, 90)))
    # a classifier that is mostly right, as the backtest's are
    truth = rng.integers(0, 3, 400)
    cases.append(("multiclass, mostly right", truth, np.where(rng.random(400) < 0.8, truth, 0)))
    return cases


@pytest.mark.parametrize(("case", "y_true", "y_pred"), _label_cases(), ids=lambda c: str(c)[:40])
def test_label_metrics_from_one_count_equal_scikit_learns(
    case: str, y_true: np.ndarray, y_pred: np.ndarray
) -> None:
    names = ["accuracy", "f1", "precision", "recall"]
    counted = label_metrics(y_true, y_pred, names)
    assert set(counted) == set(names), case
    for name in names:  # score: a separate scikit-learn call per metric
        assert counted[name] == pytest.approx(score(name, y_true, y_pred, None), abs=1e-12), (
            case,
            name,
        )


def test_label_metrics_leave_what_scikit_learn_refuses_or_types_it_reads_to_score() -> None:
    binary_truth = np.array([0, 1, 1, 0])
    assert label_metrics(binary_truth, np.array([0, 2, 1, 0]), ["f1"]) == {}  # a third class
    with pytest.raises(ValueError):  # ... which score refuses with scikit-learn's message
        score("f1", binary_truth, np.array([0, 2, 1, 0]), None)
    assert label_metrics(np.array([0, 2, 2]), np.array([2, 0, 2]), ["recall"]) == {}  # no 1
    strings = np.array(["a", "b", "c", "a"])
    assert label_metrics(strings, strings, ["accuracy"]) == {}
    assert label_metrics(np.array([], dtype=int), np.array([], dtype=int), ["accuracy"]) == {}
    assert label_metrics(binary_truth, binary_truth, []) == {}
    halves = np.array([0.0, 0.5, 1.0, 1.0])  # not classes: scikit-learn calls it continuous
    assert label_metrics(halves, np.array([0, 1, 1, 1]), ["accuracy"]) == {}
    with pytest.raises(ValueError):
        score("accuracy", halves, np.array([0, 1, 1, 1]), None)
    unlabelled = np.array([0.0, np.nan, 1.0])  # a NaN label: left to score
    assert label_metrics(unlabelled, np.array([0, 1, 1]), ["accuracy"]) == {}
