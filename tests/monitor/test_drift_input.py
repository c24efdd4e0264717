"""Bad columns get a per-column status instead of failing the check; text columns drift through
Evidently's text tests; capped sampling keeps verdicts on clear shifts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from reoptd.monitor import DriftDetector, feature_drift, feature_drift_report
from reoptd.monitor._check import CheckResult
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "tenure": rng.gamma(2.0, 12.0, n).round(),
            "monthly_charges": rng.normal(65 + 20 * shift, 18, n),
            "support_calls": rng.poisson(1.2 + 2 * shift, n).astype(float),
            "contract": rng.choice(["m2m", "1y", "2y"], n),
            "payment_method": rng.choice(["a", "b"], n),
        }
    )


def _policy(**drift: object) -> Policy:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["monitor"]["drift"] = {**data["monitor"]["drift"], **drift}
    return parse_policy(yaml.safe_dump(data))


@pytest.fixture
def detector(demo_policy: Policy) -> DriftDetector:
    return DriftDetector(demo_policy, _frame(np.random.default_rng(0), 800))


def test_text_in_a_numerical_column_is_not_tested_and_the_rest_is(detector) -> None:
    window = _frame(np.random.default_rng(1), 300)
    window["tenure"] = window["tenure"].astype(str).where(window.index > 0, "n/a")
    result = detector.check(window)
    assert (
        result["tenure"].status
        == "not_tested: wrong type: numerical column holds object (e.g. 'n/a')"
    )
    assert result["tenure"].score is None and not result["tenure"].drifted
    assert all(result[c].tested for c in result if c != "tenure")


def test_booleans_in_a_numerical_column_are_the_wrong_type(detector) -> None:
    window = _frame(np.random.default_rng(1), 300).assign(support_calls=lambda f: f.tenure > 20)
    assert detector.check(window)["support_calls"].status.startswith("not_tested: wrong type")


@pytest.mark.parametrize("missing", [np.nan, None])  # None: an object column of nulls
def test_an_all_nan_column_is_not_tested(detector, missing: object) -> None:
    window = _frame(np.random.default_rng(2), 300).assign(monthly_charges=missing)
    status = detector.check(window)["monthly_charges"].status
    assert status == "not_tested: no values (300 rows, all missing)"


def test_nans_are_left_out_of_the_test_like_evidently_does(demo_policy: Policy) -> None:
    rng = np.random.default_rng(3)
    reference, window = _frame(rng, 800), _frame(rng, 300, shift=1.0)
    window.loc[::7, "monthly_charges"] = np.nan
    window.loc[::5, "contract"] = None
    lean = feature_drift(demo_policy, reference, window)
    report = feature_drift_report(demo_policy, reference, window)
    for column in lean:
        assert lean[column].tested
        assert lean[column].score == pytest.approx(report[column].score, rel=1e-9)
        assert lean[column].drifted == report[column].drifted
    assert lean["monthly_charges"].drifted


@pytest.mark.parametrize(
    ("method", "why"),
    [
        ("anderson", "Anderson-Darling cannot run: constant column (always 3.0)"),
        ("t_test", "t_test gave no score: constant column (always 3.0)"),
        ("es", "Epps-Singleton cannot run: constant column (always 3.0)"),
    ],
)
def test_a_constant_column_a_test_cannot_handle_is_not_tested(method: str, why: str) -> None:
    policy = _policy(per_column={"support_calls": {"method": method}})
    rng = np.random.default_rng(4)
    reference = _frame(rng, 400).assign(support_calls=3.0)
    result = feature_drift(policy, reference, _frame(rng, 200).assign(support_calls=3.0))
    assert result["support_calls"].status == f"not_tested: {why}"
    assert result["monthly_charges"].tested


def test_a_constant_column_wasserstein_can_handle_is_tested(demo_policy: Policy) -> None:
    rng = np.random.default_rng(5)
    reference = _frame(rng, 400).assign(support_calls=3.0)
    result = feature_drift(demo_policy, reference, _frame(rng, 200).assign(support_calls=3.0))
    assert result["support_calls"].tested and result["support_calls"].score == 0.0


def test_a_window_smaller_than_the_test_needs_is_not_tested() -> None:
    policy = _policy(method="es")
    rng = np.random.default_rng(6)
    window = _frame(rng, 40)
    window.loc[3:, "tenure"] = np.nan  # three values left
    result = feature_drift(policy, _frame(rng, 400), window)
    assert result["tenure"].status == (
        "not_tested: too few values: Epps-Singleton needs 5 per side, the window has 3"
    )
    assert result["monthly_charges"].tested


def test_a_test_that_refuses_the_window_is_not_tested() -> None:
    # Evidently's g-test needs windows as large as the reference: a plain user mistake.
    policy = _policy(cat_method="g_test")
    rng = np.random.default_rng(7)
    result = feature_drift(policy, _frame(rng, 400), _frame(rng, 200))
    assert result["contract"].status.startswith("not_tested: g_test cannot run: ")
    assert result["tenure"].tested


def test_a_column_the_reference_lacks_is_not_tested(demo_policy: Policy) -> None:
    rng = np.random.default_rng(8)
    reference = _frame(rng, 400)
    reference["tenure"] = np.nan
    result = feature_drift(demo_policy, reference.drop(columns=["contract"]), _frame(rng, 200))
    assert result["tenure"].status == "not_tested: reference has no values"
    assert result["contract"].status == "not_tested: reference has no such column"


def test_the_drift_share_counts_tested_features_only() -> None:
    from datetime import datetime

    from reoptd.monitor import FeatureDrift
    from reoptd.monitor._drift import untested

    at = datetime(2026, 1, 1)
    result = CheckResult(
        at,
        at,
        10,
        0,
        features={
            "a": FeatureDrift(0.3, True, "m", 0.1),
            "b": FeatureDrift(0.0, False, "m", 0.1),
            "c": untested("no values"),
        },
    )
    assert result.drift_share == 0.5
    assert result.untested == {"c": "not_tested: no values"}


# -- text ----------------------------------------------------------------------------------------

# Vocabularies large enough that no word is in half the documents (Evidently's max_df=0.5).
WORDS_BEFORE = [f"plan{i}" for i in range(150)]
WORDS_AFTER = [f"outage{i}" for i in range(150)]


def _reviews(rng: np.random.Generator, n: int, changed: float) -> pd.Series:
    """Reviews of 6-10 words; after a change a share of the words come from a new vocabulary."""
    out = []
    for _ in range(n):
        k = rng.integers(6, 11)
        new = rng.random(k) < changed
        words = np.where(new, rng.choice(WORDS_AFTER, k), rng.choice(WORDS_BEFORE, k))
        out.append(" ".join(words))
    return pd.Series(out)


def _text_policy() -> Policy:
    data = yaml.safe_load(DEMO_POLICY.read_text())
    data["features"]["text"] = ["review"]
    return parse_policy(yaml.safe_dump(data))


@pytest.mark.parametrize("rows", [600, 1500])  # Evidently's percentile vs absolute text test
def test_text_drift_follows_a_vocabulary_change(rows: int) -> None:
    policy = _text_policy()
    rng = np.random.default_rng(rows)
    reference = _frame(rng, rows).assign(review=_reviews(rng, rows, 0.0))
    before = _frame(rng, 400).assign(review=_reviews(rng, 400, 0.0))
    after = _frame(rng, 400).assign(review=_reviews(rng, 400, 0.5))
    detector = DriftDetector(policy, reference)
    changed = detector.check(after)["review"]
    if rows > 1000:  # (the percentile test is slow: 1000 random classifiers; checked once)
        calm = detector.check(before)["review"]
        assert calm.tested and not calm.drifted
    assert changed.drifted
    want = "Absolute text content drift" if rows > 1000 else "Percentile text content drift"
    assert changed.method == want
    report = feature_drift_report(policy, reference, after)["review"]
    assert changed.score == pytest.approx(report.score, rel=1e-9)
    assert changed.drifted == report.drifted


def test_text_columns_are_monitor_only() -> None:
    policy = _text_policy()
    assert "review" not in policy.features.all
    assert policy.features.monitored[-1] == "review"


def test_a_numeric_text_column_is_the_wrong_type() -> None:
    policy = _text_policy()
    rng = np.random.default_rng(9)
    reference = _frame(rng, 300).assign(review=_reviews(rng, 300, 0.0))
    result = feature_drift(policy, reference, _frame(rng, 100).assign(review=1.5))
    assert result["review"].status == "not_tested: wrong type: text column holds float64"


# -- sampling ------------------------------------------------------------------------------------


def test_capped_sampling_keeps_clear_verdicts() -> None:
    policy = _policy(sample_rows=500)
    rng = np.random.default_rng(10)
    detector = DriftDetector(policy, _frame(rng, 5000))
    assert len(detector.columns["tenure"].values) == 500
    calm, shifted = detector.check(_frame(rng, 4000)), detector.check(_frame(rng, 4000, 1.0))
    assert not any(d.drifted for d in calm.values())
    assert shifted["monthly_charges"].drifted and shifted["support_calls"].drifted


# -- through the loop ----------------------------------------------------------------------------


class _ReviewSource:
    """The demo stream plus a free-text review whose vocabulary changes at the drift point."""

    name = "demo+reviews"

    def __init__(self) -> None:
        from reoptd.data import demo

        self.demo = demo
        self._inner = demo.DemoSource()

    def read(self, start, end) -> pd.DataFrame:
        frame = self._inner.read(start, end)
        rng = np.random.default_rng(int(pd.Timestamp(start).timestamp()))
        after = (frame["ts"] >= pd.Timestamp(self.demo.DRIFT_AT)).mean()
        return frame.assign(review=_reviews(rng, len(frame), 0.5 * after).to_numpy())


def test_text_columns_are_checked_by_the_loop_and_not_fed_to_the_model(
    sqlite_registry, clock, metrics
) -> None:
    from datetime import timedelta

    from reoptd.cycle import ModelLoop
    from reoptd.data import demo

    policy = _text_policy()
    data = policy.model_dump(by_alias=True, mode="json")
    data["triggers"] = []  # watch only: no re-optimization after the drift
    # the absolute test: the percentile one trains 1000 random classifiers per check
    data["monitor"]["drift"]["text_method"] = "abs_text_content_drift"
    policy = parse_policy(yaml.safe_dump(data))
    loop = ModelLoop(policy, sqlite_registry, metrics, source=_ReviewSource())
    loop.cycle(clock.now())  # bootstrap: trains on the features, keeps the review as reference
    assert "review" in loop.champion().reference.columns
    assert "review" not in loop.champion().model.features
    clock.advance(timedelta(hours=1))
    calm = loop.cycle(clock.now()).check
    clock.advance(demo.DRIFT_AT - clock.now() + timedelta(hours=2))
    changed = loop.cycle(clock.now()).check
    assert calm.status == "ok" and not calm.features["review"]["drifted"]
    assert changed.status == "ok" and changed.features["review"]["drifted"]
    assert changed.features["review"]["method"] == "Absolute text content drift"
