"""Performance estimation without labels (confidence-based, CBPE-like) on seeded streams."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from label_streams import START, label_times, policy, stream

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import ReplaySource
from reoptd.metrics import Metrics
from reoptd.models import build_model
from reoptd.monitor import Champion, check
from reoptd.monitor._estimate import Calibrator, PerformanceEstimator, expected_metrics
from reoptd.store import Store

SHIFT = START + timedelta(hours=6)


def test_expected_metrics_match_the_confusion_matrix_of_known_probabilities() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(200_000)
    y = rng.random(len(p)) < p  # labels drawn from exactly these probabilities
    hat = p > 0.5
    got = expected_metrics(p, hat, ["accuracy", "f1", "roc_auc"])
    tp, fp, fn = (hat & y).sum(), (hat & ~y).sum(), (~hat & y).sum()
    assert got["accuracy"] == pytest.approx((hat == y).mean(), abs=0.005)
    assert got["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=0.005)
    from sklearn.metrics import roc_auc_score

    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=0.005)


def test_calibration_corrects_an_over_confident_score() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0.05, 0.95, 4000)
    y = rng.random(len(p)) < p
    overconfident = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))  # logit stretched 3x
    for rows in (500, 4000):  # isotonic is a candidate from ISOTONIC_ROWS rows on
        calibrator = Calibrator.fit(overconfident[:rows], y[:rows])
        assert calibrator.method in ("platt", "isotonic")
        assert np.abs(calibrator(overconfident) - p).mean() < 0.05, calibrator.method
    assert np.abs(overconfident - p).mean() > 0.1  # what it corrected
    # a score that is already calibrated is left as it is
    assert Calibrator.fit(p[:2000], y[:2000]).method == "none"


def test_estimated_accuracy_tracks_realised_accuracy_under_covariate_shift() -> None:
    """P(x) shifts towards the decision boundary at SHIFT, P(y|x) stays: accuracy falls, and the
    estimate made without labels follows it within 3 points, before and after."""
    frame = stream("covariate", change_at=SHIFT, hours=10, every=timedelta(seconds=2), seed=3)
    p = policy()
    train = frame[frame.ts < START + timedelta(hours=3)]
    holdout = frame[
        (frame.ts >= START + timedelta(hours=3)) & (frame.ts < START + timedelta(hours=4))
    ]
    model = build_model(p).fit(train, train["y"])
    champion = Champion(1, model, train, calibration=holdout)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(0)))  # labels: realised
    gaps, realised = {}, {}
    for hours in (6, 8, 10):  # windows before the shift, straddling nothing, after it
        result = check(p, source, champion, START + timedelta(hours=hours))
        assert result.rows == 3600 and result.labelled_rows == 3600
        realised[hours] = result.metrics["accuracy"]
        gaps[hours] = result.estimated["accuracy"] - realised[hours]
        assert result.estimation is not None and result.estimation.calibrated_on == "holdout"
    assert realised[6] - realised[10] > 0.1, realised  # the shift really hurts
    assert all(abs(g) < 0.03 for g in gaps.values()), (gaps, realised)


def test_estimation_needs_reference_labels_and_a_classifier() -> None:
    frame = stream("none", change_at=SHIFT, hours=4, seed=4)
    p = policy()
    model = build_model(p).fit(frame, frame["y"])
    unlabelled = frame.drop(columns="y")
    assert Champion(1, model, unlabelled).estimator(p) is None
    one_class = frame.assign(y=1.0)
    assert PerformanceEstimator.build(model, one_class, "y", "holdout") is None
    # an old reference without holdout rows still works, and says what it calibrated on
    estimator = Champion(1, model, frame).estimator(p)
    assert estimator is not None and estimator.calibrated_on == "training rows"


@pytest.mark.slow
def test_estimated_metric_trigger_fires_through_the_loop_after_the_shift(
    sqlite_registry: Store, metrics: Metrics
) -> None:
    """Labels stop arriving at the shift: only the estimate can tell the model got worse."""
    frame = stream("covariate", change_at=SHIFT, hours=10, seed=5)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(minutes=30), SHIFT))
    p = policy(
        triggers=[{"estimated_metric": {"name": "accuracy", "below": 0.72, "for": 2}}],
        guards={"max_runs_per_day": 1},  # one run; the bootstrap does not count
    )
    clock = SimulatedClock(START + timedelta(hours=4))
    loop = ModelLoop(p, sqlite_registry, metrics, source=source)
    while clock.now() <= START + timedelta(hours=10):
        loop.cycle(clock.now())
        clock.advance(p.monitor.every)
    checks = sqlite_registry.checks(p.model, limit=100)
    estimates = {c.at: c.signals["estimated"]["accuracy"] for c in checks if c.status == "ok"}
    assert all(v > 0.75 for at, v in estimates.items() if at <= SHIFT), estimates
    decisions = sqlite_registry.decisions(p.model)
    fired = [d for d in decisions if d.fire]
    assert fired and all(d.at > SHIFT for d in fired), [(d.at, d.reasons) for d in decisions]
    assert fired[0].triggers == ["estimated_metric"]
    assert "estimated accuracy" in fired[0].reasons
    assert not any(d.fire for d in decisions if d.at <= SHIFT)
    value = metrics.registry.get_sample_value(
        "reoptd_estimated_metric", {"model": p.model, "metric": "accuracy"}
    )
    assert value == pytest.approx(checks[-1].signals["estimated"]["accuracy"])
