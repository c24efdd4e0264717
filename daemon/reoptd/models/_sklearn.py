"""The sklearn family: any estimator named by import path, behind a shared preprocessing step.

Numerical features are standardized, categorical ones one-hot encoded (unseen categories are
ignored, not fatal), so any estimator works on the policy's columns unchanged.
"""

from __future__ import annotations

import io
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
