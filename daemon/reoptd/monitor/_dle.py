"""Regression performance estimated without labels: direct loss estimation (as NannyML's DLE).

A small gradient-boosted model, fitted on the champion's holdout (labelled rows it never trained
on), predicts each row's absolute error |y - y_hat| from the row's features and the champion's
prediction; a second one its squared error. Their means over a window are the estimated MAE and
(root of the mean) RMSE. Like the confidence-based estimate of classifiers, this is sound under
covariate shift (the inputs move, P(y | x) stays) and blind to concept drift.

**The band.** Two errors: the loss models' own (the pair is refitted on ``RESAMPLES`` bootstrap
resamples of the holdout, whose window means spread) and the window's sampling error (each
row's error varies around its expected size: the variance of |e| is E[e^2] - E[|e|]^2, both
estimated; of e^2 about 2 E[e^2]^2, as for a normal error). Replicates add a normal draw of
the sampling error to one resample's mean; the band is their quantiles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.preprocessing import OrdinalEncoder

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
#: the prediction's column among the loss models' inputs
PREDICTION = "__reoptd_prediction__"


def _loss_model() -> HistGradientBoostingRegressor:
    # Poisson loss: a mean regression with a log link, so a predicted error is never negative;
    # shallow, regularised and early-stopped, since errors are noisy targets.
    return HistGradientBoostingRegressor(
        loss="poisson",
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        early_stopping=True,
        validation_fraction=0.2,
        random_state=0,
    )


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
        absolute, squared = [], []
        for r in range(RESAMPLES + 1):
            pick = np.arange(len(x)) if r == 0 else rng.integers(0, len(x), len(x))
            for models, loss in ((absolute, np.abs(error)), (squared, error**2)):
                fitted = _loss_model().set_params(categorical_features=kinds or None)
                models.append(fitted.fit(x[pick], loss[pick]))
        return cls(encoder, absolute, squared, calibrated_on, len(rows), support)

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
        absolute = np.array([m.predict(x) for m in self.absolute])  # models x rows
        squared = np.array([m.predict(x) for m in self.squared])
        n = len(frame)
        mae, mse = absolute[0].mean(), squared[0].mean()
        # the window's sampling error, from the first (full holdout) pair
        sd_mae = np.sqrt(np.clip(squared[0] - absolute[0] ** 2, 0, None).sum()) / n
        sd_mse = np.sqrt((2 * squared[0] ** 2).sum()) / n
        rng = np.random.default_rng(n)
        pick = rng.integers(1, len(self.absolute), REPLICATES) if len(self.absolute) > 1 else 0
        z = rng.standard_normal((2, REPLICATES))
        draws = {
            "mae": absolute.mean(axis=1)[pick] + z[0] * sd_mae,
            "rmse": np.sqrt(np.clip(squared.mean(axis=1)[pick] + z[1] * sd_mse, 0, None)),
        }
        point = {"mae": float(mae), "rmse": float(np.sqrt(mse))}
        tail = (1 - confidence) / 2
        for name in wanted:
            estimate.values[name] = point[name]
            estimate.lower[name] = float(np.quantile(draws[name], tail))
            estimate.upper[name] = float(np.quantile(draws[name], 1 - tail))
        return estimate
