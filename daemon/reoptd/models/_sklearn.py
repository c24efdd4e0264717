"""The sklearn family: any estimator named by import path, behind a shared preprocessing step.

Numerical features are standardized, categorical ones one-hot encoded (unseen categories are
ignored, not fatal), so any estimator works on the policy's columns unchanged.

A warm start (``fit_warm``) continues a copy of the champion's fitted pipeline on new rows: its
preprocessing is kept (so the estimator sees the same columns; categories it never saw encode as
zeros), and the estimator goes on learning: more boosting iterations (HistGradientBoosting) or
trees (RandomForest, ExtraTrees, GradientBoosting) with ``warm_start``, the old solution as the
starting point for other ``warm_start`` estimators, or one ``partial_fit`` pass.
"""

from __future__ import annotations

import copy
import io
import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from reoptd.errors import ArtifactError, OptimizeError
from reoptd.models.sklearn import EstimatorRefused, resolve_estimator
from reoptd.policy import Policy


def import_estimator(path: str) -> type:
    """The estimator class of ``train.estimator``, checked again against the operator's
    allowlist (a policy built without validation must not run code either)."""
    try:
        return resolve_estimator(path)
    except EstimatorRefused as exc:
        raise OptimizeError(f"train.estimator: {exc}") from None


class SklearnModel:
    """A fitted or unfitted pipeline plus the columns it reads. Pickled as an artifact."""

    family = "sklearn"

    def __init__(self, pipeline: Any, features: list[str], task: str) -> None:
        self.pipeline = pipeline
        self.features = features
        self.task = task

    @classmethod
    def build(cls, policy: Policy, params: dict[str, Any] | None = None) -> SklearnModel:
        estimator_cls = import_estimator(policy.train.estimator)
        params = dict(policy.train.params if params is None else params)
        try:
            estimator = estimator_cls(**params)
        except TypeError as exc:
            raise OptimizeError(
                f"train.params: {policy.train.estimator} rejects the parameters: {exc}"
            ) from None
        transformers: list[tuple[str, Any, list[str]]] = []
        if policy.features.numerical:
            transformers.append(("num", StandardScaler(), policy.features.numerical))
        if policy.features.categorical:
            encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
            transformers.append(("cat", encoder, policy.features.categorical))
        pipeline = Pipeline([("prep", ColumnTransformer(transformers)), ("est", estimator)])
        return cls(pipeline, policy.features.all, policy.task)

    @property
    def params(self) -> dict[str, Any]:
        # an adopted model may be any estimator or pipeline: its last step is the estimator
        est = self.pipeline[-1] if isinstance(self.pipeline, Pipeline) else self.pipeline
        return {k: v for k, v in est.get_params(deep=False).items() if _plain(v)}

    def fit(self, frame: pd.DataFrame, target: pd.Series) -> SklearnModel:
        try:
            self.pipeline.fit(frame[self.features], target)
        except ValueError as exc:
            raise OptimizeError(f"training failed: {exc}") from None
        return self

    def warm_problem(self, start: Any) -> str:
        """Why this model cannot continue ``start`` (the champion); empty: it can."""
        if not isinstance(start, SklearnModel):
            kind = getattr(start, "family", type(start).__name__)
            return f"the champion is a {kind} model, not a scikit-learn pipeline"
        if not _ours(start.pipeline):
            return "the champion is not a pipeline reoptd built (an adopted model)"
        if start.features != self.features or start.task != self.task:
            return f"the champion reads other features ({', '.join(start.features)})"
        mine, theirs = self.pipeline.named_steps["est"], start.pipeline.named_steps["est"]
        if type(mine) is not type(theirs):
            return f"the champion is a {type(theirs).__name__}, not a {type(mine).__name__}"
        if "warm_start" not in theirs.get_params() and not hasattr(theirs, "partial_fit"):
            return f"{type(theirs).__name__} has neither warm_start nor partial_fit"
        return ""

    def fit_warm(
        self, frame: pd.DataFrame, target: pd.Series, start: SklearnModel, *, budget: float
    ) -> SklearnModel:
        """Continue a copy of ``start`` on ``frame`` with its preprocessing: ``budget`` x this
        model's ``max_iter`` more boosting iterations or x ``n_estimators`` more trees, a refit
        from the old solution, or one ``partial_fit`` pass. ``OptimizeError`` if it cannot."""
        problem = self.warm_problem(start)
        if problem:
            raise OptimizeError(f"warm start: {problem}")
        pipeline = copy.deepcopy(start.pipeline)
        est = pipeline.named_steps["est"]
        own = self.pipeline.named_steps["est"].get_params()
        params = est.get_params()
        try:
            x = pipeline.named_steps["prep"].transform(frame[self.features])
            grow = next((k for k in _GROWS if k in params and _grows(est, k)), None)
            if "warm_start" in params:
                if grow is not None:
                    more = max(1, math.ceil(int(own[grow]) * budget))
                    est.set_params(**{grow: int(params[grow]) + more})
                est.set_params(warm_start=True)
                est.fit(x, target)
                est.set_params(warm_start=False)
            else:
                est.partial_fit(x, target)
        except ValueError as exc:
            raise OptimizeError(f"warm start: {exc}") from None
        self.pipeline = pipeline
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict(frame[self.features])

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        """Probability of the positive class for binary classifiers, else None."""
        if self.task != "classification" or not hasattr(self.pipeline, "predict_proba"):
            return None
        proba = self.pipeline.predict_proba(frame[self.features])
        return proba[:, 1] if proba.shape[1] == 2 else None

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        pickle.dump(self, buffer, protocol=pickle.HIGHEST_PROTOCOL)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> SklearnModel:
        try:
            model = pickle.loads(data)
        except Exception as exc:  # unpickling can raise anything
            raise ArtifactError(f"model artifact does not load: {exc}") from None
        if not isinstance(model, SklearnModel):
            raise ArtifactError(f"model artifact holds a {type(model).__name__}, not a model")
        return model


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


#: parameters that count the stages a warm start adds (boosting iterations, trees)
_GROWS = ("max_iter", "n_estimators")


def _grows(estimator: Any, param: str) -> bool:
    """Whether more ``param`` adds stages (boosting, trees) rather than solver iterations."""
    from sklearn.ensemble import (
        BaseEnsemble,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
    )

    if param == "n_estimators":
        return isinstance(estimator, BaseEnsemble)
    hist = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
    return isinstance(estimator, hist)


def _ours(pipeline: Any) -> bool:
    return isinstance(pipeline, Pipeline) and set(pipeline.named_steps) == {"prep", "est"}
