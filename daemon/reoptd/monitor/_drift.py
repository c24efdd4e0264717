"""Per-feature drift with Evidently's statistical tests.

Two paths give the same verdicts:

``DriftDetector`` (what checks use) calls Evidently's own stat tests directly, once per column,
with column types from the policy instead of inference, no report rendering, and the reference
side prepared once per champion: the cleaned reference columns, their distinct values for
Evidently's automatic test choice, and the resolved test when the policy names one.

``feature_drift_report`` runs Evidently's ``Report`` with one ``ValueDrift`` per column and reads
Evidently's test verdicts. It is the reference the lean path is tested against, and what a person
gets when they want Evidently's plots.

Method choice follows Evidently: the policy's ``method``/``threshold`` for numerical columns,
``cat_method``/``cat_threshold`` for categorical ones, ``per_column`` overrides, and Evidently's
automatic choice when none is given.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import StatTest, get_stattest
from evidently.legacy.core import ColumnType
from evidently.metrics import ValueDrift

from reoptd.errors import DataError
from reoptd.policy import Policy


@dataclass(frozen=True)
class FeatureDrift:
    score: float
    drifted: bool
    method: str
    threshold: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def column_spec(policy: Policy, column: str) -> tuple[str | None, float | None]:
    """The (method, threshold) the policy asks for on ``column``; None lets Evidently choose."""
    spec = policy.monitor.drift
    if column in policy.features.categorical:
        method, threshold = spec.cat_method, spec.cat_threshold
    else:
        method, threshold = spec.method, spec.threshold
    override = spec.per_column.get(column)
    if override is not None:
        method = override.method or method
        threshold = override.threshold if override.threshold is not None else threshold
    return method, threshold


@dataclass
class _ReferenceColumn:
    kind: ColumnType
    values: pd.Series  # cleaned: no NaN, no inf
    distinct: frozenset[object]
    method: str | None
    threshold: float | None
    test: StatTest | None  # resolved once when the policy names the method


def _prepare(
    values: pd.Series, kind: ColumnType, method: str | None, threshold: float | None, name: str
) -> _ReferenceColumn:
    """The reference side of one column, computed once."""
    values = _clean(values)
    if values.empty:
        raise DataError(f"reference column {name!r} is empty", column=name)
    test = None
    if method is not None:
        try:
            test = get_stattest(values, values, kind, method)
        except ValueError as exc:
            raise DataError(f"drift method for {name!r}: {exc}", column=name) from None
    return _ReferenceColumn(kind, values, frozenset(values.unique()), method, threshold, test)


def _compare(ref: _ReferenceColumn, current: pd.Series, name: str) -> FeatureDrift:
    cur = _clean(current)
    if cur.empty:
        raise DataError(f"column {name!r} has no finite values", column=name)
    test = ref.test
    if test is None:
        # Evidently's automatic choice depends on the distinct values of both sides.
        distinct = len(ref.distinct | frozenset(cur.unique()))
        test = _default_test(ref.values, cur, ref.kind, distinct)
    outcome = test(ref.values, cur, ref.kind, ref.threshold)
    return FeatureDrift(
        score=float(outcome.drift_score),
        drifted=bool(outcome.drifted),
        method=test.display_name,
        threshold=float(outcome.actual_threshold),
    )


class DriftDetector:
    """Drift of current windows against one fixed reference sample (a champion's).

    Build it once per champion version; ``check`` is then called for every window.
    """

    def __init__(self, policy: Policy, reference: pd.DataFrame) -> None:
        self.columns: dict[str, _ReferenceColumn] = {}
        for column in policy.features.all:
            kind = (
                ColumnType.Categorical
                if column in policy.features.categorical
                else ColumnType.Numerical
            )
            method, threshold = column_spec(policy, column)
            self.columns[column] = _prepare(reference[column], kind, method, threshold, column)

    def check(self, current: pd.DataFrame) -> dict[str, FeatureDrift]:
        return {
            column: _compare(ref, current[column], column) for column, ref in self.columns.items()
        }


class PredictionDrift:
    """Drift of a model's outputs: its predictions on the reference vs on the current window.

    Scores (positive-class probabilities, regression outputs) are numerical, class labels
    categorical; Evidently picks the test.
    """

    def __init__(self, reference_output: np.ndarray) -> None:
        series = pd.Series(reference_output)
        kind = (
            ColumnType.Numerical if pd.api.types.is_float_dtype(series) else ColumnType.Categorical
        )
        if kind == ColumnType.Categorical:
            series = series.astype(str)
        self.kind = kind
        self.reference = _prepare(series, kind, None, None, "prediction")

    def check(self, current_output: np.ndarray) -> FeatureDrift:
        series = pd.Series(current_output)
        if self.kind == ColumnType.Categorical:
            series = series.astype(str)
        return _compare(self.reference, series, "prediction")


def feature_drift(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """One-shot lean drift of ``current`` against ``reference``."""
    return DriftDetector(policy, reference).check(current)


def feature_drift_report(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """The same comparison through Evidently's ``Report`` (slower; renders widgets)."""
    definition = DataDefinition(
        numerical_columns=policy.features.numerical,
        categorical_columns=policy.features.categorical,
    )
    columns = policy.features.all
    ref = Dataset.from_pandas(reference[columns], data_definition=definition)
    cur = Dataset.from_pandas(current[columns], data_definition=definition)
    metrics = []
    for column in columns:
        method, threshold = column_spec(policy, column)
        metrics.append(ValueDrift(column=column, method=method, threshold=threshold))
    result = Report(metrics, include_tests=True).run(cur, ref).dict()
    verdicts = {t["metric_config"]["metric_id"]: t["status"] for t in result["tests"]}
    drift: dict[str, FeatureDrift] = {}
    for metric in result["metrics"]:
        config = metric["config"]
        drift[config["column"]] = FeatureDrift(
            score=float(metric["value"]),
            drifted=verdicts.get(metric["id"]) == "FAIL",
            method=str(config.get("method")),
            threshold=config.get("threshold"),
        )
    return {c: drift[c] for c in columns}


def _clean(values: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values):
        values = values.replace([-np.inf, np.inf], np.nan)
    return values.dropna()


def _default_test(
    reference: pd.Series, current: pd.Series, kind: ColumnType, distinct: int
) -> StatTest:
    """Evidently's automatic test choice, with the distinct count computed from cached sets."""
    from evidently.legacy.calculations import stattests

    if len(reference) <= 1000:
        if distinct <= 2:
            return stattests.z_stat_test
        if kind == ColumnType.Categorical or distinct <= 5:
            return stattests.chi_stat_test
        return stattests.ks_stat_test
    if kind == ColumnType.Categorical or distinct <= 5:
        return stattests.jensenshannon_stat_test
    return stattests.wasserstein_stat_test
