"""The policy's metric on rows whose labels have arrived."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from reoptd.models import Model


def score(metric: str, y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> float:
    """One named metric. ``y_score`` (positive-class probability) is used by ``roc_auc``."""
    binary = len(np.unique(y_true)) <= 2
    if metric == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if metric == "f1":
        if binary:
            return float(skm.f1_score(y_true, y_pred, pos_label=1, zero_division=0))
        return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    if metric == "roc_auc":
        if y_score is None or len(np.unique(y_true)) < 2:
            return float("nan")
        return float(skm.roc_auc_score(y_true, y_score))
    if metric == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    if metric == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if metric == "r2":
        return float(skm.r2_score(y_true, y_pred))
    raise ValueError(f"unknown metric {metric!r}")


def evaluate(model: Model, frame, target: str, names: list[str]) -> dict[str, float]:
    """Every metric in ``names`` for ``model`` on the labelled ``frame``."""
    y_true = frame[target].to_numpy()
    y_pred = model.predict(frame)
    y_score = model.predict_score(frame) if "roc_auc" in names else None
    return {name: score(name, y_true, y_pred, y_score) for name in names}
