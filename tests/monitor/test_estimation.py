"""Performance estimation without labels (confidence-based, CBPE-like) on seeded streams."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from label_streams import START, label_times, policy, stream

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import ReplaySource
from reoptd.metrics import Metrics
from reoptd.models import build_model
from reoptd.monitor import Champion, check
from reoptd.monitor._dle import LossEstimator
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
    sample = metrics.registry.get_sample_value
    labels = {"model": p.model, "metric": "accuracy"}
    value = sample("reoptd_estimated_metric", {**labels, "bound": "estimate"})
    assert value == pytest.approx(checks[-1].signals["estimated"]["accuracy"])
    band = checks[-1].signals["estimation"]
    assert sample("reoptd_estimated_metric", {**labels, "bound": "lower"}) == pytest.approx(
        band["lower"]["accuracy"]
    )
    assert sample("reoptd_estimated_metric", {**labels, "bound": "upper"}) == pytest.approx(
        band["upper"]["accuracy"]
    )


# -- every task, with bands ------------------------------------------------------------------


def _task_stream(task: str, seed: int, shift_at=SHIFT, hours: float = 10) -> pd.DataFrame:
    """``stream``'s inputs (covariate shift at ``shift_at``) with a 4-class or a regression
    target drawn from a fixed P(y | x)."""
    frame = stream(
        "covariate", change_at=shift_at, hours=hours, every=timedelta(seconds=2), seed=seed
    )
    rng = np.random.default_rng(seed + 100)
    x1, x2 = frame["x1"].to_numpy(), frame["x2"].to_numpy()
    b = (frame["segment"] == "b").to_numpy(dtype=float)
    if task == "multiclass":
        logits = np.column_stack([1.5 * x1, 1.2 * x2, -1.0 * x1 + 0.8 * x2, 0.8 * b + 0.2])
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random((len(frame), 1))
        frame["y"] = np.minimum((u > p.cumsum(axis=1)).sum(axis=1), 3).astype(float)
    else:  # errors grow with x2 squared: a shift of x2 changes the model's MAE
        noise = (0.3 + 0.3 * x2**2) * rng.standard_normal(len(frame))
        frame["y"] = 2.0 * x1 - 1.0 * x2 + 0.5 * b + noise
    return frame


def _champion(p, frame: pd.DataFrame) -> Champion:
    train = frame[frame.ts < START + timedelta(hours=3)]
    holdout = frame[
        (frame.ts >= START + timedelta(hours=3)) & (frame.ts < START + timedelta(hours=4))
    ]
    return Champion(1, build_model(p).fit(train, train["y"]), train, calibration=holdout)


def test_multiclass_estimates_follow_the_realised_metrics_with_bands() -> None:
    frame = _task_stream("multiclass", seed=11)
    p = policy(triggers=[{"estimated_metric": {"name": "f1", "below": 0.3, "confidence": 0.9}}])
    champion = _champion(p, frame)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(0)))
    for hours in (6, 10):  # before and after the shift
        result = check(p, source, champion, START + timedelta(hours=hours))
        est, band = result.estimated, result.estimation
        assert band is not None and band.reliable and band.confidence == 0.9
        assert {"accuracy", "f1", "precision", "recall", "roc_auc", "f1_weighted"} <= set(est)
        assert band.calibration_rows == 1800 and band.calibrated_on == "holdout"
        # every row is labelled already: the realised values are stored beside the estimates
        assert band.realised is not None
        for name in ("accuracy", "f1", "precision", "recall"):
            assert abs(est[name] - band.realised[name]) < 0.03, (hours, name, est, band.realised)
            assert band.lower is not None and band.upper is not None
            assert band.lower[name] <= est[name] <= band.upper[name]
        assert band.errors(est)["accuracy"] == pytest.approx(
            est["accuracy"] - band.realised["accuracy"]
        )
        assert "roc_auc" not in band.realised  # (no multiclass ROC AUC with labels to compare)


def test_regression_estimates_mae_and_rmse_by_direct_loss_estimation() -> None:
    frame = _task_stream("regression", seed=12)
    p = policy(
        task="regression",
        train={
            "estimator": "sklearn.linear_model.LinearRegression",
            "window": "4h",
            "min_rows": 200,
        },
        promote={"metric": "mae", "holdout": "25%"},
        triggers=[{"estimated_metric": {"name": "mae", "above": 5.0, "confidence": 0.9}}],
    )
    champion = _champion(p, frame)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(0)))
    realised = {}
    for hours in (6, 10):
        result = check(p, source, champion, START + timedelta(hours=hours))
        band = result.estimation
        assert band is not None and band.calibration == "dle" and band.realised is not None
        assert set(result.estimated) == {"mae", "rmse"}
        realised[hours] = band.realised["mae"]
        # (squared errors are heavy-tailed: their model is the rougher of the two)
        for name, within in (("mae", 0.1), ("rmse", 0.25)):
            gap = abs(result.estimated[name] - band.realised[name]) / band.realised[name]
            assert gap < within, (hours, name, result.estimated, band.realised)
            assert band.lower is not None and band.upper is not None
            assert band.lower[name] < result.estimated[name] < band.upper[name]
    assert realised[10] < 0.8 * realised[6]  # the shift to small x2 really changed the MAE


def test_a_window_outside_the_holdouts_support_gets_no_number() -> None:
    frame = stream("none", change_at=SHIFT, hours=8, every=timedelta(seconds=2), seed=13)
    far = frame.ts >= SHIFT
    frame.loc[far, "x1"] = frame.loc[far, "x1"] + 25.0  # nowhere near a holdout row
    p = policy()
    champion = _champion(p, frame)
    source = ReplaySource(frame, "ts", "y", label_times(frame, timedelta(0)))
    before = check(p, source, champion, SHIFT)
    assert before.estimated and before.estimation is not None and before.estimation.reliable
    after = check(p, source, champion, SHIFT + timedelta(hours=2))
    assert after.estimated == {}
    assert after.estimation is not None and not after.estimation.reliable
    assert after.estimation.unsupported_share == 1.0
    assert "outside the range of the holdout" in (after.estimation.reason or "")
    # the gauges stop showing the last number instead of a stale one
    metrics = Metrics()
    metrics.export_label_signals(p.model, before.signals)
    metrics.export_label_signals(p.model, after.signals)
    labels = {"model": p.model, "metric": "accuracy", "bound": "estimate"}
    assert np.isnan(metrics.registry.get_sample_value("reoptd_estimated_metric", labels))


def test_the_band_covers_the_realised_accuracy_of_small_windows() -> None:
    """Windows of 200 rows: the band is wide enough to hold the realised accuracy in most of
    them (the 90% band, 40 windows: at least 30), and narrows as windows grow."""
    frame = stream("none", change_at=SHIFT, hours=14, every=timedelta(seconds=2), seed=14)
    p = policy()
    champion = _champion(p, frame)
    estimator = champion.estimator(p)
    assert estimator is not None
    model = champion.model
    rest = frame[frame.ts >= START + timedelta(hours=4)].reset_index(drop=True)
    inside, widths = 0, {}
    for i in range(40):
        window = rest.iloc[i * 200 : (i + 1) * 200]
        got = estimator.estimate(model.predict_score(window), ["accuracy"], 0.9, window)
        realised = float((model.predict(window) == window["y"]).mean())
        inside += got.lower["accuracy"] <= realised <= got.upper["accuracy"]
        widths[200] = got.upper["accuracy"] - got.lower["accuracy"]
    big = rest.iloc[:8000]
    wide = estimator.estimate(model.predict_score(big), ["accuracy"], 0.9, big)
    assert inside >= 30, inside
    assert wide.upper["accuracy"] - wide.lower["accuracy"] < widths[200] / 3


def _regression_rows(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    """Rows of a regression whose noise grows with |x0|; ``shift`` (0 to 1) moves x0 and the
    segment mix (covariate shift: P(y | x) stays), so the champion's MAE grows."""
    x = rng.normal(0.0, 1.0, (n, 3))
    x[:, 0] += 1.2 * shift
    b = rng.random(n) < 0.3 + 0.4 * shift
    mean = 2.0 * x[:, 0] + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] ** 2 + 0.8 * b
    frame = pd.DataFrame(x, columns=["x0", "x1", "x2"])
    frame["segment"] = np.where(b, "b", "a")
    frame["y"] = mean + (0.3 + 0.5 * np.abs(x[:, 0])) * rng.standard_normal(n)
    frame["ts"] = START
    return frame


def test_the_mae_band_covers_the_realised_mae_under_covariate_shift() -> None:
    """A boosted regressor, its loss models fitted on a 5,000-row holdout, then 100 chunks of
    1,000 rows whose inputs move step by step to where the model's errors are larger. The 90%
    band must hold the realised MAE in at least 85 chunks (a band of exactly 90% misses more
    than 15 of 100 independent chunks with probability 0.04, binomial) and be centred on the
    estimate: the band used to be centred on the bootstrap-refitted loss models' mean, which
    sits below the estimate (here by up to 0.22 of the band's half-width, growing with the
    shift), so that where the estimate is low already the band missed (in a bench run on main,
    7 of the regression stream's 40 chunks)."""
    p = policy(
        task="regression",
        features={"numerical": ["x0", "x1", "x2"], "categorical": ["segment"]},
        train={
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 150, "random_state": 0},
        },
        promote={"metric": "mae"},
    )
    rng = np.random.default_rng(19)
    train = _regression_rows(rng, 20_000, 0.0)
    holdout = _regression_rows(rng, 5_000, 0.0)
    model = build_model(p).fit(train, train["y"])
    estimator = Champion(1, model, train, calibration=holdout).estimator(p)
    assert isinstance(estimator, LossEstimator)
    inside, widths, realised, offsets = 0, [], [], []
    for step in np.linspace(0.0, 1.0, 100):
        chunk = _regression_rows(rng, 1_000, float(step))
        got = estimator.estimate(model, chunk.drop(columns="y"), ["mae"], 0.9)
        mae = float(np.abs(chunk["y"] - model.predict(chunk)).mean())
        inside += got.lower["mae"] <= mae <= got.upper["mae"]
        half = (got.upper["mae"] - got.lower["mae"]) / 2
        widths.append(2 * half / got.values["mae"])
        offsets.append(abs((got.upper["mae"] + got.lower["mae"]) / 2 - got.values["mae"]) / half)
        realised.append(mae)
    assert realised[-1] > 1.2 * realised[0]  # the shift really made the model worse
    assert inside >= 85, inside
    assert max(offsets) < 0.1, max(offsets)  # (only the resamples' skew and the draws')
    assert np.mean(widths) < 0.3  # and not by a band too wide to say anything


def test_the_band_holds_a_calibration_error_the_holdout_cannot_see() -> None:
    """A binary model over-confident by a logit slope of 0.9 (its true P(positive) is
    expit(0.9 * logit(score))): on a 2,000-row holdout the cross-validation cannot tell its
    scores from calibrated ones and leaves them as they are (``none``), so the estimate
    over-states accuracy on every window. 30 independent (holdout, 5,000-row window) pairs: the
    band must hold the realised accuracy in at least 85% of them. A band of the window's sampling
    error alone (the band before the calibration's error was carried for ``none``) holds it in
    fewer than half."""
    rng = np.random.default_rng(23)

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        logit = rng.normal(0.0, 1.5, n)
        score, truth = 1 / (1 + np.exp(-logit)), 1 / (1 + np.exp(-0.9 * logit))
        return np.column_stack([1 - score, score]), (rng.random(n) < truth).astype(int)

    trials, uncalibrated, inside, inside_sampling, widths = 30, 0, 0, 0, []
    for _ in range(trials):
        estimator = PerformanceEstimator.from_probabilities([0, 1], *rows(2_000), "holdout")
        uncalibrated += estimator.method == "none"
        sampling_only = PerformanceEstimator([0, 1], estimator.calibrators, "holdout")
        proba, y = rows(5_000)
        realised = float((proba.argmax(axis=1) == y).mean())
        got = estimator.estimate(proba, ["accuracy"])
        bare = sampling_only.estimate(proba, ["accuracy"])
        assert got.values == bare.values  # (the same point estimate: only the band differs)
        inside += got.lower["accuracy"] <= realised <= got.upper["accuracy"]
        inside_sampling += bare.lower["accuracy"] <= realised <= bare.upper["accuracy"]
        widths.append(got.upper["accuracy"] - got.lower["accuracy"])
    assert uncalibrated >= 0.9 * trials, uncalibrated  # (the case at issue: scores left as is)
    assert inside >= 0.85 * trials, inside
    assert inside_sampling < 0.5 * trials, inside_sampling
    assert np.mean(widths) < 0.05, np.mean(widths)  # (and not by a band too wide to say anything)
