"""The lean drift path gives exactly Evidently's Report verdicts, and flags known shifts."""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
import pytest

from reoptd.errors import DataError
from reoptd.monitor import DriftDetector, feature_drift, feature_drift_report
from reoptd.policy import Policy
from reoptd.policy._schema import ColumnDrift


def _frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 12.0, n).round(),
            "monthly_charges": rng.normal(65 + 20 * shift, 18, n),
            "support_calls": rng.poisson(1.2 + 2 * shift, n).astype(float),
            "contract": rng.choice(
                ["m2m", "1y", "2y"],
                n,
                p=[0.5 + 0.3 * shift, 0.3, 0.2 - 0.3 * shift]
                if shift <= 0.5
                else [0.8, 0.15, 0.05],
            ),
            "payment_method": rng.choice(["a", "b"], n),  # two values: Evidently's z-test
        }
    )


def _with(policy: Policy, **drift: object) -> Policy:
    spec = policy.monitor.drift.model_copy(update=drift)
    return policy.model_copy(update={"monitor": policy.monitor.model_copy(update={"drift": spec})})


AUTO = {"method": None, "threshold": None, "cat_method": None, "cat_threshold": None}
CASES = {
    "auto-small": (AUTO, 600),  # K-S, chi-square, z-test
    "auto-large": (AUTO, 2500),  # Wasserstein, Jensen-Shannon
    "demo": ({}, 800),
    "psi": ({"method": "psi", "threshold": 0.1, "cat_method": "psi", "cat_threshold": 0.1}, 900),
    "kl_div": ({"method": "kl_div", "cat_method": "kl_div"}, 900),
    "anderson+chisquare": ({"method": "anderson", "cat_method": "chisquare"}, 700),
    "ks-strict": ({"method": "ks", "threshold": 0.001, "cat_method": "jensenshannon"}, 700),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("shift", [0.0, 0.3, 1.0])
def test_lean_path_matches_evidently_report(demo_policy: Policy, case: str, shift: float) -> None:
    drift, n = CASES[case]
    policy = _with(demo_policy, **drift)
    rng = np.random.default_rng(zlib.crc32(f"{case}/{shift}".encode()))
    reference, current = _frame(rng, n, 0.0), _frame(rng, n // 2, shift)
    lean = feature_drift(policy, reference, current)
    report = feature_drift_report(policy, reference, current)
    assert list(lean) == list(report)
    for column in lean:
        assert lean[column].drifted == report[column].drifted, column
        assert lean[column].score == pytest.approx(report[column].score, rel=1e-9, abs=1e-12)
        assert lean[column].threshold == pytest.approx(report[column].threshold)


def test_per_column_override_wins(demo_policy: Policy) -> None:
    override = ColumnDrift(method="ks", threshold=0.01)
    policy = _with(demo_policy, per_column={"tenure": override})
    rng = np.random.default_rng(3)
    result = feature_drift(policy, _frame(rng, 800, 0), _frame(rng, 400, 0))
    assert result["tenure"].method.startswith("K-S") and result["tenure"].threshold == 0.01
    assert result["monthly_charges"].method.startswith("Wasserstein")


def test_a_strong_shift_is_flagged_and_no_shift_is_not(demo_policy: Policy) -> None:
    rng = np.random.default_rng(11)
    reference = _frame(rng, 1500, 0.0)
    detector = DriftDetector(demo_policy, reference)
    calm = detector.check(_frame(rng, 700, 0.0))
    shifted = detector.check(_frame(rng, 700, 1.0))
    assert not any(d.drifted for d in calm.values())
    assert shifted["monthly_charges"].drifted and shifted["support_calls"].drifted
    assert not shifted["tenure"].drifted


def test_an_unknown_method_names_the_column(demo_policy: Policy) -> None:
    policy = _with(demo_policy, method="no-such-test")
    rng = np.random.default_rng(1)
    with pytest.raises(DataError, match="'tenure'"):
        DriftDetector(policy, _frame(rng, 100, 0))
