"""The policy's metric on rows whose labels have arrived.

Built in: accuracy, f1, precision, recall, roc_auc, average_precision, log_loss, brier and
value (a business value from ``promote.costs``) for classifiers; rmse, mae, mape and r2 for
regressors. Which are better higher is ``reoptd.policy.METRICS``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn import metrics as skm

from reoptd.models import Model
from reoptd.policy import Costs

#: what ``value`` is computed from: the policy's ``promote.costs`` or a plain mapping
CostsLike = Costs | Mapping[str, float]

#: metrics computed from the positive-class probability (``predict_score``)
NEEDS_SCORE = frozenset({"roc_auc", "average_precision", "log_loss", "brier"})


def score(
    metric: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    costs: CostsLike | None = None,
) -> float:
    """One named metric. ``y_score`` (positive-class probability) is used by the metrics in
    ``NEEDS_SCORE``; ``costs`` ({tp, fp, fn, tn}: value per outcome) by ``value``."""
    binary = len(np.unique(y_true)) <= 2
    average = "binary" if binary else "macro"
    positive = {"pos_label": 1} if binary else {}
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if metric in ("f1", "precision", "recall"):
        fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}
        return float(fn[metric](y_true, y_pred, average=average, zero_division=0, **positive))
    if metric in NEEDS_SCORE:
        if y_score is None or len(np.unique(y_true)) < 2:
            return float("nan")
        if metric == "roc_auc":
            return float(skm.roc_auc_score(y_true, y_score))
        if metric == "average_precision":
            return float(skm.average_precision_score(y_true, y_score))
        if metric == "log_loss":
            return float(skm.log_loss(y_true, np.clip(y_score, 1e-15, 1 - 1e-15), labels=[0, 1]))
        return float(skm.brier_score_loss(y_true, y_score))
    if metric == "value":
        if costs is None:
            raise ValueError("metric 'value' needs promote.costs {tp, fp, fn, tn}")
        return business_value(y_true, y_pred, costs)
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if metric == "mape":
        return float(skm.mean_absolute_percentage_error(y_true, y_pred))
    if metric == "r2":
        return float(skm.r2_score(y_true, y_pred))
    raise ValueError(f"unknown metric {metric!r}")


def business_value(y_true: np.ndarray, y_pred: np.ndarray, costs: CostsLike) -> float:
    """The mean value per row of a binary classifier's decisions: each true positive, false
    positive, false negative and true negative is worth ``costs[tp|fp|fn|tn]`` (costs negative)."""
    if isinstance(costs, Costs):
        costs = costs.model_dump()
    truth, pred = np.asarray(y_true) == 1, np.asarray(y_pred) == 1
    if len(truth) == 0:
        return float("nan")
    total = (
        costs.get("tp", 0.0) * np.sum(truth & pred)
        + costs.get("fp", 0.0) * np.sum(~truth & pred)
        + costs.get("fn", 0.0) * np.sum(truth & ~pred)
        + costs.get("tn", 0.0) * np.sum(~truth & ~pred)
    )
    return float(total / len(truth))


def evaluate(
    model: Model,
    frame,
    target: str,
    names: list[str],
    costs: CostsLike | None = None,
    scores: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric in ``names`` for ``model`` on the labelled ``frame``. ``scores``: the
    model's ``predict_score`` of ``frame`` when the caller has it already (a check scored the
    window for prediction drift): the same array, not computed twice."""
    y_true = frame[target].to_numpy()
    y_pred = model.predict(frame)
    y_score = None
    if NEEDS_SCORE.intersection(names):
        y_score = scores if scores is not None else model.predict_score(frame)
    return {name: score(name, y_true, y_pred, y_score, costs) for name in names}
