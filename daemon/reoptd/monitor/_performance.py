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
    counted = label_metrics(y_true, y_pred, [n for n in names if n in LABEL_METRICS])
    return {
        name: counted[name] if name in counted else score(name, y_true, y_pred, y_score, costs)
        for name in names
    }


#: metrics computed from the predicted labels alone: ``label_metrics`` counts them in one pass
LABEL_METRICS = frozenset({"accuracy", "f1", "precision", "recall"})


def label_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: list[str]) -> dict[str, float]:
    """``names`` (of ``LABEL_METRICS``) from one confusion count of ``y_true`` and ``y_pred``:
    the values ``score`` gets from separate scikit-learn calls (binary: class 1 positive;
    more classes in ``y_true``: the macro mean over the classes in either array; zero
    division 0), each of which validates the labels and builds its own confusion matrix.
    Integer, boolean or whole float labels only (a target column with late labels is
    float); otherwise, or where scikit-learn would refuse the labels
    (a third class only predicted, no class 1 beside another), empty: ``score`` computes."""
    if not names:
        return {}
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if (
        y_true.ndim != 1
        or y_true.shape != y_pred.shape
        or len(y_true) == 0
        or not _class_labels(y_true)
        or not _class_labels(y_pred)
    ):
        return {}
    classes, codes = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
    n = len(classes)
    truth, pred = codes[: len(y_true)], codes[len(y_true) :]
    confusion = np.bincount(truth * n + pred, minlength=n * n).reshape(n, n)
    tp = np.diagonal(confusion)
    true_sum, pred_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    if len(np.unique(y_true)) <= 2:  # binary, class 1 positive, as ``score``
        if n > 2 or (n == 2 and 1 not in classes):
            return {}  # scikit-learn raises: let it, with its message
        one = classes == 1
        tp, true_sum, pred_sum = tp[one], true_sum[one], pred_sum[one]
        if not one.any():  # one class, not 1: nothing positive, every ratio zero-division
            tp = true_sum = pred_sum = np.zeros(1, dtype=np.int64)
    found: dict[str, float] = {}
    for name in names:
        if name == "accuracy":
            found[name] = float(np.average(y_true == y_pred))
            continue
        num = 2.0 * tp if name == "f1" else tp.astype(np.float64)
        den = {"precision": pred_sum, "recall": true_sum, "f1": true_sum + pred_sum}[name]
        den = den.astype(np.float64)
        ratio = num / np.where(den == 0, 1.0, den)
        found[name] = float(np.nanmean(np.where(den == 0, 0.0, ratio)))
    return found


def _class_labels(values: np.ndarray) -> bool:
    """True for labels scikit-learn reads as classes and ``label_metrics`` counts exactly:
    booleans, integers, and floats that are all whole numbers (no NaN, no inf)."""
    if values.dtype.kind in "biu":
        return True
    if values.dtype.kind != "f":
        return False
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
