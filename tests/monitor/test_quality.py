"""Data quality signals: flagged after a seeded change, not before; stored and exported."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest
import yaml

from reoptd.metrics import Metrics
from reoptd.monitor import DriftDetector
from reoptd.monitor._check import CheckResult
from reoptd.monitor._quality import QualityReference
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 12.0, n).round(),
            "monthly_charges": rng.normal(65, 18, n),
            "support_calls": rng.poisson(1.2, n).astype(float),
            "contract": rng.choice(["m2m", "1y", "2y"], n),
            "payment_method": rng.choice(["card", "bank"], n),
            "churned": rng.integers(0, 2, n),
            "ts": pd.date_range("2026-01-01", periods=n, freq="s"),
            "request_id": np.arange(n),
        }
    )


@pytest.fixture
def reference() -> pd.DataFrame:
    return _frame(np.random.default_rng(0), 3000)


def test_calm_windows_raise_no_flag(demo_policy: Policy, reference: pd.DataFrame) -> None:
    quality = QualityReference(demo_policy, reference)
    rng = np.random.default_rng(1)
    for _ in range(5):
        result = quality.check(_frame(rng, 500))
        assert result.flagged == []
        assert set(result.missing_share.values()) == {0.0}
        assert set(result.unseen_share.values()) == {0.0}
        assert max(result.out_of_range_share.values()) <= 0.01
        assert result.missing_columns == [] and result.retyped_columns == {}
        assert result.extra_columns == []  # target, timestamp and id are known columns


def test_each_seeded_problem_is_flagged_with_the_column(
    demo_policy: Policy, reference: pd.DataFrame
) -> None:
    quality = QualityReference(demo_policy, reference)
    window = _frame(np.random.default_rng(2), 500)
    window.loc[:99, "support_calls"] = np.nan  # 20% missing
    window.loc[:49, "monthly_charges"] = 10_000.0  # 10% far outside the reference range
    window.loc[:24, "contract"] = "3y"  # 5% of a new category
    window["tenure"] = window["tenure"].astype(str)  # retyped upstream
    window["coupon"] = "x"  # a column the policy does not know
    result = quality.check(window.drop(columns=["payment_method"]))
    assert result.missing_share["support_calls"] == pytest.approx(0.2)
    assert result.out_of_range_share["monthly_charges"] == pytest.approx(0.1)
    assert result.unseen_share["contract"] == pytest.approx(0.05)
    assert result.unseen_examples["contract"] == ["3y"]
    assert result.retyped_columns == {"tenure": "number -> text"}
    assert result.missing_columns == ["payment_method"]
    assert result.extra_columns == ["coupon"]
    flagged = {line.split(":")[0] for line in result.flagged}
    assert flagged == {"support_calls", "monthly_charges", "contract", "tenure", "payment_method"}
    stored = result.to_dict()
    assert stored["schema"] == {
        "missing": ["payment_method"],
        "extra": ["coupon"],
        "retyped": {"tenure": "number -> text"},
    }


def test_tolerances_come_from_the_policy(reference: pd.DataFrame) -> None:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["monitor"]["quality"] = {"missing_share": "25%", "unseen_share": 0.1}
    policy = parse_policy(yaml.safe_dump(data))
    window = _frame(np.random.default_rng(3), 400)
    window.loc[:79, "support_calls"] = np.nan  # 20%: under the 25% tolerance
    window.loc[:19, "contract"] = "3y"  # 5%: under 10%
    result = QualityReference(policy, reference).check(window)
    assert result.flagged == []
    assert result.missing_share["support_calls"] == pytest.approx(0.2)


def test_quality_and_statuses_are_exported_with_bounded_series(
    demo_policy: Policy, reference: pd.DataFrame
) -> None:
    window = _frame(np.random.default_rng(4), 400)
    window.loc[:39, "support_calls"] = np.nan
    window["tenure"] = "n/a"
    at = datetime(2026, 1, 2)
    result = CheckResult(
        at,
        at,
        len(window),
        0,
        features=DriftDetector(demo_policy, reference).check(window),
        quality=QualityReference(demo_policy, reference).check(window),
    )
    quality = result.signals.quality
    assert quality is not None and quality.missing_share["support_calls"] == pytest.approx(0.1)
    assert result.signals.to_json()["quality"]["missing_share"]["support_calls"] == (
        pytest.approx(0.1)
    )
    metrics = Metrics(max_features=2)  # tenure, monthly_charges get per-feature series
    metrics.observe_monitoring("churn", result)
    get = metrics.registry.get_sample_value
    assert get("reoptd_feature_tested", {"model": "churn", "feature": "tenure"}) == 0
    assert get("reoptd_feature_tested", {"model": "churn", "feature": "monthly_charges"}) == 1
    assert get("reoptd_features_untested", {"model": "churn"}) == 1
    assert get("reoptd_schema_changes", {"model": "churn", "change": "retyped"}) == 1
    assert get("reoptd_data_quality_issues", {"model": "churn"}) == 2  # retyped + missing
    assert get("reoptd_feature_missing_share", {"model": "churn", "feature": "tenure"}) == 0
    # support_calls is over the cap: no per-feature series, the model-level gauges still count it
    assert (
        get("reoptd_feature_missing_share", {"model": "churn", "feature": "support_calls"}) is None
    )
