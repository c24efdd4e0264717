"""Adopting a model already in production: the team's own model becomes the champion.

``reoptd models adopt`` calls it. The model is a fitted scikit-learn estimator or pipeline, read
from a pickle or joblib file the operator trusts (unpickling runs code: the CLI makes the
operator say so), or from an MLflow registry (``models:/name@alias`` or ``models:/name/3``).
Before anything is stored it must fit the policy: it predicts, its task matches, and the columns
it was fitted on (``feature_names_in_``) are exactly the policy's features; an error names the
missing and the extra ones. A reference dataset (the rows drift is measured against; with labels,
also the rows its holdout metrics and label-free estimation are computed on) is stored beside
it, then it is registered as the next version and made champion by the normal atomic promotion.
The daemon then monitors it and, when its policy says so, challenges it with versions it trains.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from reoptd.cycle.reference import pack
from reoptd.errors import AdoptError
from reoptd.models import SklearnModel
from reoptd.monitor import evaluate
from reoptd.policy import Policy
from reoptd.store import Store, VersionRecord

log = logging.getLogger("reoptd.adopt")

#: labelled reference rows needed before holdout metrics are computed and stored
MIN_LABELLED = 30
#: file names an MLflow model's directory may keep the pickled model under
PICKLES = ("model.pkl", "model.joblib", "model.pickle")


@dataclass
class Adoptable:
    """A model read for adoption and where it came from."""

    estimator: Any
    source: str
    details: dict[str, Any] = field(default_factory=dict)


def read_file(path: Path) -> Adoptable:
    """The model in a pickle or joblib file (joblib reads both). Only for a file the operator
    trusts: loading it runs whatever code the file names."""
    import joblib

    if not path.is_file():
        raise AdoptError(f"{path}: no such file")
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # unpickling can raise anything
        raise AdoptError(
            f"{path}: not a pickle or joblib file that loads here: {type(exc).__name__}: {exc}"
        ) from None
    return Adoptable(estimator, str(path))


def read_mlflow(uri: str, tracking_uri: str) -> Adoptable:
    """The model of an MLflow registry URI (``models:/name@alias`` or ``models:/name/3``): a
    scikit-learn flavour model (its ``MLmodel`` names the pickle) or a directory holding one
    ``model.pkl``/``model.joblib`` (as reoptd's own sync logs them)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # talk to the operator's server only
    import mlflow.artifacts
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    name, alias, number = _parse_models_uri(uri)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if alias is not None:
            mv = client.get_model_version_by_alias(name, alias)
        else:
            mv = client.get_model_version(name, str(number))
        with tempfile.TemporaryDirectory(prefix="reoptd-adopt-") as tmp:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=mv.source, dst_path=tmp, tracking_uri=tracking_uri
                )
            )
            pickled = _find_pickle(local, uri)
            adoptable = read_file(pickled)
    except MlflowException as exc:
        raise AdoptError(f"{uri}: {exc.message}") from None
    adoptable.source = uri
    adoptable.details = {
        "mlflow_uri": uri,
        "mlflow_name": name,
        "mlflow_version": str(mv.version),
        "mlflow_run_id": mv.run_id,
    }
    return adoptable


def _parse_models_uri(uri: str) -> tuple[str, str | None, int | None]:
    if not uri.startswith("models:/"):
        raise AdoptError(f"{uri}: not an MLflow model URI (models:/NAME@ALIAS or models:/NAME/3)")
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if name and alias:
            return name, alias, None
    else:
        name, _, number = rest.rpartition("/")
        if name and number.isdigit():
            return name, None, int(number)
    raise AdoptError(f"{uri}: not an MLflow model URI (models:/NAME@ALIAS or models:/NAME/3)")


def _find_pickle(directory: Path, uri: str) -> Path:
    import yaml

    mlmodel = directory / "MLmodel"
    if mlmodel.is_file():
        flavors = (yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {})
        sklearn = flavors.get("sklearn")
        if not sklearn:
            raise AdoptError(
                f"{uri}: an MLflow model without the sklearn flavour (it has:"
                f" {', '.join(flavors) or 'none'}); reoptd adopts scikit-learn models"
            )
        if sklearn.get("serialization_format") not in (None, "pickle", "cloudpickle"):
            raise AdoptError(
                f"{uri}: sklearn model serialized as {sklearn['serialization_format']!r};"
                " reoptd reads pickle and cloudpickle"
            )
        return directory / sklearn.get("pickled_model", "model.pkl")
    for name in PICKLES:
        if (directory / name).is_file():
            return directory / name
    raise AdoptError(f"{uri}: holds neither an MLmodel file nor {', '.join(PICKLES)}")


def fit_to_policy(estimator: Any, policy: Policy, source: str) -> SklearnModel:
    """``estimator`` as a reoptd model reading the policy's columns, or ``AdoptError`` saying
    what does not fit: not a predicting scikit-learn model, the wrong task, columns missing
    from or extra to the policy's features."""
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if not (isinstance(estimator, BaseEstimator) and callable(getattr(estimator, "predict", None))):
        raise AdoptError(
            f"{source}: holds a {type(estimator).__name__}, not a scikit-learn estimator or"
            " pipeline that predicts"
        )
    kind = type(estimator).__name__
    if policy.task == "classification" and not is_classifier(estimator):
        raise AdoptError(f"{source}: {kind} is not a classifier; policy task is classification")
    if policy.task == "regression" and not is_regressor(estimator):
        raise AdoptError(f"{source}: {kind} is not a regressor; policy task is regression")
    names = getattr(estimator, "feature_names_in_", None)
    if names is None:
        raise AdoptError(
            f"{source}: {kind} was fitted without column names (on an array, or not fitted),"
            " so its input columns cannot be checked against the policy; fit it on a DataFrame"
            " with the policy's feature columns"
        )
    columns = [str(c) for c in names]
    expected = policy.features.all
    missing = [c for c in columns if c not in expected]
    extra = [c for c in expected if c not in columns]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"it reads columns the policy's features lack: {', '.join(missing)}")
        if extra:
            problems.append(f"the policy's features it does not read: {', '.join(extra)}")
        raise AdoptError(
            f"{source}: {kind} does not fit policy {policy.model!r}: " + "; ".join(problems)
        )
    return SklearnModel(estimator, columns, policy.task)


def reference_rows(frame: pd.DataFrame, policy: Policy, source: str) -> pd.DataFrame:
    """The reference rows, checked: the policy's features and timestamp present, some rows."""
    if frame.empty:
        raise AdoptError(f"{source}: the reference holds no rows")
    needed = [*policy.features.all, policy.timestamp]
    absent = [c for c in needed if c not in frame.columns]
    if absent:
        raise AdoptError(f"{source}: the reference lacks the policy's columns: {', '.join(absent)}")
    return frame


def adopt(
    store: Store,
    policy: Policy,
    found: Adoptable,
    reference: pd.DataFrame,
    *,
    at: datetime,
    reference_source: str,
) -> VersionRecord:
    """Register ``found`` as the next version of the policy's model and promote it; the
    promoted version. Nothing is stored if it does not fit the policy or fails on the
    reference rows."""
    model = fit_to_policy(found.estimator, policy, found.source)
    rows = reference_rows(reference, policy, reference_source)
    try:
        model.predict(rows.head(50))
    except Exception as exc:  # the adopted model's own code: anything
        raise AdoptError(
            f"{found.source}: fails to predict the reference rows ({reference_source}):"
            f" {type(exc).__name__}: {exc}"
        ) from None
    has_target = policy.target in rows.columns
    labelled = rows[rows[policy.target].notna()] if has_target else rows.iloc[:0]
    metrics: dict[str, Any] = {
        "metric": policy.metric,
        "holdout_rows": len(labelled),
        "adopted": {"source": found.source, "reference": reference_source, **found.details},
    }
    if len(labelled) >= MIN_LABELLED:
        metrics["holdout"] = evaluate(
            model, labelled, policy.target, [policy.metric], policy.promote.costs
        )
    ts = pd.to_datetime(rows[policy.timestamp], utc=True)
    store.ensure_model(policy, at)
    version = store.add_version(
        policy.model,
        model_bytes=model.to_bytes(),
        reference_bytes=pack(policy, rows, labelled),
        at=at,
        trigger="adopted",
        estimator=f"{type(found.estimator).__module__}.{type(found.estimator).__qualname__}",
        params=model.params,
        metrics=metrics,
        train_rows=len(rows),
        train_start=ts.min().floor("us").to_pydatetime(),
        train_end=ts.max().ceil("us").to_pydatetime(),
    )
    store.promote(policy.model, version.version, at=at, reason=f"adopted from {found.source}")
    log.info("%s: adopted %s as v%d, champion", policy.model, found.source, version.version)
    return store.version(policy.model, version.version)
