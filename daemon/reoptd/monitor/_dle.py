"""Regression performance estimated without labels: direct loss estimation (as NannyML's DLE).

A small gradient-boosted model, fitted on the champion's holdout (labelled rows it never trained
on), predicts each row's absolute error |y - y_hat| from the row's features and the champion's
prediction; a second one its squared error. Their means over a window are the estimated MAE and
(root of the mean) RMSE. Like the confidence-based estimate of classifiers, this is sound under
covariate shift (the inputs move, P(y | x) stays) and blind to concept drift.

**The band.** Centred on the estimate, it adds three errors: the window's sampling error (each
row's error varies around its expected size: the variance of |e| is E[e^2] - E[|e|]^2, both
estimated; of e^2 about 2 E[e^2]^2, as for a normal error); the loss models' own error where the
window's rows are (``Miscalibration``: fitted on 4 folds of the holdout and checked on the
fifth, by bins of predicted loss; a window's relative error is the root mean square of its rows'
bins' relative errors, an upper bound of the mix's error, so a window that moved to the bins the
models get wrong gets a wider band than the holdout's own mix); and the error of fitting on this
one holdout (the pair is refitted on ``RESAMPLES`` bootstrap resamples of the holdout: their
window means' deviations from their own mean). Replicates add one resample's deviation and a
normal draw of the other two to the estimate; the band is their quantiles. (The band used to be
centred on the resampled models' mean, which sits below the full holdout's estimate: boosting on
a resample with repeated rows predicts lower losses elsewhere; under a covariate shift, where
the estimate is already low, the band then missed the realised MAE in one chunk in five.)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.preprocessing import OrdinalEncoder
from threadpoolctl import threadpool_limits

from reoptd.monitor._support import Estimate, Support

if TYPE_CHECKING:
    from collections.abc import Sequence

    from reoptd.models import Model

#: metrics this module estimates
ESTIMABLE_LOSS = ("mae", "rmse")
#: labelled holdout rows the loss models need
MIN_LOSS_ROWS = 100
#: loss models refitted on bootstrap resamples of the holdout, and replicates of a band
RESAMPLES = 8
REPLICATES = 400
#: folds and bins of the loss models' out-of-fold check on the holdout
FOLDS = 5
BINS = 10
#: threads of the loss models: they are small, and OpenMP threads competing with the daemon's
#: other work for the cores cost far more than they gain
THREADS = 1
#: the prediction's column among the loss models' inputs
PREDICTION = "__reoptd_prediction__"


def _loss_model() -> HistGradientBoostingRegressor:
    # Poisson loss: a mean regression with a log link, so a predicted error is never negative;
    # shallow trees with large leaves and a fixed, modest number of rounds, since errors are
    # noisy targets (early stopping on a few thousand rows stops too early, and the estimate
    # shrinks to the holdout's mean error where the window's differs)
    return HistGradientBoostingRegressor(
        loss="poisson",
        learning_rate=0.1,
        max_iter=100,
        max_leaf_nodes=8,
        min_samples_leaf=30,
        early_stopping=False,
        random_state=0,
    )


@dataclass(frozen=True)
class Miscalibration:
    """How far off a loss model is, relatively, by bins of its predicted loss: ``edges`` cut
    predicted losses into ``BINS`` bins of the holdout's rows, and ``relative`` is each bin's
    squared relative error (mean loss - mean prediction, less the part its own sampling noise
    explains, over the mean prediction, squared)."""

    edges: np.ndarray
    relative: np.ndarray

    def of(self, predicted: np.ndarray) -> float:
        """The relative error of the mean prediction of rows ``predicted`` so: the root mean
        square of their bins' relative errors. (A mix of bins has a relative error at most
        this, whatever the signs of the bins' errors: Cauchy-Schwarz.)"""
        if len(self.relative) == 0 or len(predicted) == 0:
            return 0.0
        bins = np.searchsorted(self.edges, predicted, side="right")
        return float(np.sqrt(self.relative[bins].mean()))

    @classmethod
    def measure(cls, x: np.ndarray, loss: np.ndarray, kinds: list[bool]) -> Miscalibration:
        """Fitted on 4 folds of the holdout and predicting the fifth, the rows are cut into
        ``BINS`` by predicted loss and each bin's relative error measured."""
        predicted = np.empty(len(x))
        order = np.random.default_rng(1).permutation(len(x))
        for fold in np.array_split(order, FOLDS):
            rest = np.setdiff1d(order, fold)
            fitted = _loss_model().set_params(categorical_features=kinds or None)
            predicted[fold] = fitted.fit(x[rest], loss[rest]).predict(x[fold])
        parts = np.array_split(np.argsort(predicted), BINS)
        relative = []
        for part in parts:
            guess = predicted[part].mean()
            noise = loss[part].std() / np.sqrt(len(part))
            gap = max((loss[part].mean() - guess) ** 2 - noise**2, 0.0)
            relative.append(gap / guess**2 if guess > 0 else 0.0)
        # a bin's upper edge is the midpoint between its highest prediction and the next bin's
        # lowest; the first and last bins reach out to anything below and above
        edges = [(predicted[a].max() + predicted[b].min()) / 2 for a, b in pairwise(parts)]
        return cls(np.asarray(edges, dtype=float), np.asarray(relative, dtype=float))


NONE = Miscalibration(np.empty(0), np.empty(0))


class LossEstimator:
    """Estimates a regressor's MAE and RMSE on unlabelled rows; built once per champion."""

    def __init__(
        self,
        encoder: ColumnTransformer,
        absolute: list[HistGradientBoostingRegressor],
        squared: list[HistGradientBoostingRegressor],
        calibrated_on: str,
        rows: int,
        support: Support | None = None,
    ) -> None:
        self.encoder = encoder
        self.absolute = absolute  # [fitted on the holdout, then on each resample]
        self.squared = squared
        self.calibrated_on = calibrated_on
        self.rows = rows
        self.support = support
        self.method = "dle"
        #: the loss models' relative errors out of fold on the holdout (absolute, squared)
        self.miscalibration = (NONE, NONE)

    @classmethod
    def build(
        cls,
        model: Model,
        rows: pd.DataFrame,
        target: str,
        calibrated_on: str,
        numerical: list[str],
        categorical: list[str],
        support: Support | None = None,
    ) -> LossEstimator | None:
        """Fit the loss models on the labelled ``rows``; None when there are too few."""
        rows = rows[rows[target].notna()]
        if len(rows) < MIN_LOSS_ROWS:
            return None
        prediction = np.asarray(model.predict(rows), dtype=float)
        error = rows[target].to_numpy(dtype=float) - prediction
        numerical = [c for c in numerical if c in rows.columns]
        categorical = [c for c in categorical if c in rows.columns]
        encoder = ColumnTransformer(
            [
                ("num", "passthrough", [*numerical, PREDICTION]),
                (
                    "cat",
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        encoded_missing_value=np.nan,
                    ),
                    categorical,
                ),
            ]
        )
        x = encoder.fit_transform(rows.assign(**{PREDICTION: prediction}))
        kinds = [False] * (len(numerical) + 1) + [True] * len(categorical)
        rng = np.random.default_rng(0)
        with threadpool_limits(THREADS):
            absolute, squared = cls._fit(x, error, kinds, rng)
            miscalibration = (
                Miscalibration.measure(x, np.abs(error), kinds),
                Miscalibration.measure(x, error**2, kinds),
            )
        estimator = cls(encoder, absolute, squared, calibrated_on, len(rows), support)
        estimator.miscalibration = miscalibration
        return estimator

    @staticmethod
    def _fit(
        x: np.ndarray, error: np.ndarray, kinds: list[bool], rng: np.random.Generator
    ) -> tuple[list[HistGradientBoostingRegressor], list[HistGradientBoostingRegressor]]:
        absolute: list[HistGradientBoostingRegressor] = []
        squared: list[HistGradientBoostingRegressor] = []
        for r in range(RESAMPLES + 1):
            pick = np.arange(len(x)) if r == 0 else rng.integers(0, len(x), len(x))
            for models, loss in ((absolute, np.abs(error)), (squared, error**2)):
                fitted = _loss_model().set_params(categorical_features=kinds or None)
                models.append(fitted.fit(x[pick], loss[pick]))
        return absolute, squared

    def estimate(
        self,
        model: Model,
        frame: pd.DataFrame,
        names: Sequence[str],
        confidence: float = 0.9,
        prediction: np.ndarray | None = None,
    ) -> Estimate:
        """Estimated MAE and RMSE of ``model`` on the window ``frame``, with their bands.
        ``prediction`` is the model's on ``frame`` when the caller has it already."""
        wanted = [n for n in names if n in ESTIMABLE_LOSS]
        outside = self.support.outside(frame) if self.support is not None else 0.0
        estimate = Estimate(confidence=confidence, unsupported_share=outside)
        if not estimate.reliable or len(frame) == 0 or not wanted:
            return estimate
        if prediction is None:
            prediction = model.predict(frame)
        x = self.encoder.transform(frame.assign(**{PREDICTION: np.asarray(prediction, float)}))
        with threadpool_limits(THREADS):
            absolute = np.array([m.predict(x) for m in self.absolute])  # models x rows
            squared = np.array([m.predict(x) for m in self.squared])
        n = len(frame)
        mae, mse = absolute[0].mean(), squared[0].mean()
        # the window's sampling error, from the first (full holdout) pair: the variance of |e|
        # is E[e^2] - E[|e|]^2, at least what a normal error of that E[|e|] would have (the
        # squared-error model, fitted on a noisier target, is the more shrunk of the two)
        spread = np.maximum(squared[0] - absolute[0] ** 2, (np.pi / 2 - 1) * absolute[0] ** 2)
        sd_mae = np.sqrt(spread.sum()) / n
        sd_mse = np.sqrt((2 * squared[0] ** 2).sum()) / n
        # ... the loss models' own error where the window's rows are, measured out of fold
        sd_mae = float(np.hypot(sd_mae, self.miscalibration[0].of(absolute[0]) * mae))
        sd_mse = float(np.hypot(sd_mse, self.miscalibration[1].of(squared[0]) * mse))
        # ... and the error of fitting on this holdout: the resampled models' deviations (from
        # their own mean: they predict lower than the full holdout's pair, see the module's doc)
        rng = np.random.default_rng(n)
        resampled = (absolute[1:].mean(axis=1), squared[1:].mean(axis=1))
        if len(self.absolute) > 1:
            pick = rng.integers(0, len(self.absolute) - 1, REPLICATES)
            shift = [r[pick] - r.mean() for r in resampled]
        else:
            shift = [np.zeros(REPLICATES), np.zeros(REPLICATES)]
        z = rng.standard_normal((2, REPLICATES))
        draws = {
            "mae": mae + shift[0] + z[0] * sd_mae,
            "rmse": np.sqrt(np.clip(mse + shift[1] + z[1] * sd_mse, 0, None)),
        }
        point = {"mae": float(mae), "rmse": float(np.sqrt(mse))}
        tail = (1 - confidence) / 2
        for name in wanted:
            estimate.values[name] = point[name]
            estimate.lower[name] = float(np.quantile(draws[name], tail))
            estimate.upper[name] = float(np.quantile(draws[name], 1 - tail))
        return estimate
