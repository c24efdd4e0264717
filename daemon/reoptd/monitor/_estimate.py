"""Performance estimation without labels: confidence-based, in the spirit of NannyML's CBPE.

A binary classifier's score, once calibrated, is the probability that the row is positive. Under
covariate shift (the inputs move, P(y | x) stays) that stays true on new rows, so the expected
confusion matrix of a window follows from the scores alone:

    E[TP] = sum(p_i over predicted positives)      E[FP] = sum(1 - p_i over predicted positives)
    E[FN] = sum(p_i over predicted negatives)      E[TN] = sum(1 - p_i over predicted negatives)

and accuracy, f1 and ROC AUC are read from it. Under concept drift (P(y | x) changes) no
label-free estimate can follow the change; that is what target drift and the labelled metric
(with backfill) are for.

Calibration is fitted once per champion on labelled rows the champion did not train on: the
holdout slice of its run, stored beside its drift reference. Calibrating on training rows would
inherit the model's over-confidence on them and over-estimate accuracy; they are used only for
versions registered before holdout rows were kept, and the estimate says so (``calibrated_on``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

if TYPE_CHECKING:
    from reoptd.models import Model

#: labelled rows calibration needs, and the count from which isotonic regression is a candidate
MIN_CALIBRATION_ROWS = 50
ISOTONIC_ROWS = 1000
#: metrics this module can estimate
ESTIMABLE = ("accuracy", "f1", "roc_auc")


@dataclass
class Calibrator:
    """Maps a raw positive-class score to a calibrated probability.

    Three candidates, and the one with the lowest cross-validated log loss on the calibration
    rows wins: the score as it is (a well-calibrated model needs nothing, and refitting would only
    add noise), Platt scaling (a logistic fit on the score's logit: two parameters, stable on a
    few hundred rows) and, from ``ISOTONIC_ROWS`` rows, isotonic regression (no parametric shape,
    but it overfits small samples).
    """

    method: str
    rows: int
    _platt: LogisticRegression | None = None
    _isotonic: IsotonicRegression | None = None

    @classmethod
    def fit(cls, scores: np.ndarray, positive: np.ndarray, *, folds: int = 5) -> Calibrator:
        scores = np.asarray(scores, dtype=float)
        positive = np.asarray(positive, dtype=int)
        # simplest first: the one-standard-error rule picks the simplest candidate whose loss is
        # within one standard error of the best, so noise does not buy a needless refit
        methods = ["none", "platt"] + (["isotonic"] if len(scores) >= ISOTONIC_ROWS else [])
        losses: dict[str, list[float]] = {m: [] for m in methods}
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        for train, test in splitter.split(scores.reshape(-1, 1), positive):
            for method in methods:
                fitted = cls._fit(method, scores[train], positive[train])
                loss = log_loss(positive[test], fitted(scores[test]), labels=[0, 1])
                losses[method].append(float(loss))
        means = {m: float(np.mean(v)) for m, v in losses.items()}
        best = min(methods, key=lambda m: means[m])
        error = float(np.std(losses[best], ddof=1) / np.sqrt(folds))
        chosen = next(m for m in methods if means[m] <= means[best] + error)
        return cls._fit(chosen, scores, positive)

    @classmethod
    def _fit(cls, method: str, scores: np.ndarray, positive: np.ndarray) -> Calibrator:
        if method == "isotonic":
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            iso.fit(scores, positive)
            return cls(method, len(scores), _isotonic=iso)
        if method == "platt":
            platt = LogisticRegression(C=1e4)
            platt.fit(_logit(scores).reshape(-1, 1), positive)
            return cls(method, len(scores), _platt=platt)
        return cls("none", len(scores))

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores, dtype=float)
        if self._isotonic is not None:
            # keep probabilities off 0 and 1 so a log loss stays finite
            return np.clip(self._isotonic.predict(scores), 1e-6, 1 - 1e-6)
        if self._platt is not None:
            return self._platt.predict_proba(_logit(scores).reshape(-1, 1))[:, 1]
        return np.clip(scores, 1e-6, 1 - 1e-6)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def expected_metrics(
    probability: np.ndarray, predicted_positive: np.ndarray, names: list[str] | tuple[str, ...]
) -> dict[str, float]:
    """Expected ``names`` (of ``ESTIMABLE``) from calibrated P(positive) and the predictions."""
    p = np.asarray(probability, dtype=float)
    hat = np.asarray(predicted_positive, dtype=bool)
    out: dict[str, float] = {}
    if len(p) == 0:
        return out
    tp, fp = p[hat].sum(), (1 - p[hat]).sum()
    fn, tn = p[~hat].sum(), (1 - p[~hat]).sum()
    for name in names:
        if name == "accuracy":
            out[name] = float((tp + tn) / len(p))
        elif name == "f1":
            denominator = 2 * tp + fp + fn
            out[name] = float(2 * tp / denominator) if denominator > 0 else 0.0
        elif name == "roc_auc":
            # Each row counts as a positive with weight p and as a negative with weight 1 - p:
            # the AUC of the scores against those expected labels.
            if p.sum() <= 0 or (1 - p).sum() <= 0:
                continue
            labels = np.r_[np.ones(len(p)), np.zeros(len(p))]
            weights = np.r_[p, 1 - p]
            ranks = np.r_[p, p]
            out[name] = float(roc_auc_score(labels, ranks, sample_weight=weights))
    return out


class PerformanceEstimator:
    """Estimates a binary classifier's metrics on unlabelled rows; built once per champion.

    ``positive`` is the label the model's score is the probability of (sklearn's second class).
    """

    def __init__(self, calibrator: Calibrator, positive: object, calibrated_on: str) -> None:
        self.calibrator = calibrator
        self.positive = positive
        self.calibrated_on = calibrated_on

    @classmethod
    def build(
        cls, model: Model, rows: pd.DataFrame, target: str, calibrated_on: str
    ) -> PerformanceEstimator | None:
        """Calibrate ``model`` on the labelled ``rows``; None when they cannot support it (too
        few, one class only, or a model without a positive-class score)."""
        rows = rows[rows[target].notna()]
        classes = np.sort(rows[target].unique())
        if len(rows) < MIN_CALIBRATION_ROWS or len(classes) != 2:
            return None
        scores = model.predict_score(rows)
        if scores is None:
            return None
        positive = classes[1]
        calibrator = Calibrator.fit(scores, (rows[target] == positive).to_numpy())
        return cls(calibrator, positive, calibrated_on)

    def estimate(self, scores: np.ndarray, names: list[str] | tuple[str, ...]) -> dict[str, float]:
        """Expected metrics of a window from the model's positive-class scores on it.

        The model predicts the positive class where its score is above 0.5 (the argmax of two
        class probabilities, ties going to the first class as in sklearn and torch), so the
        predictions need no second pass over the window."""
        probability = self.calibrator(scores)
        wanted = [n for n in names if n in ESTIMABLE]
        return expected_metrics(probability, np.asarray(scores) > 0.5, wanted)
