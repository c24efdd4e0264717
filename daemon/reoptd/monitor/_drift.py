"""Per-feature drift with Evidently's statistical tests.

Two paths give the same verdicts:

``DriftDetector`` (what checks use) calls Evidently's own stat tests directly, once per column,
with column types from the policy instead of inference, no report rendering, and the reference
side prepared once per champion: the cleaned reference columns, whether they have few enough
distinct values for Evidently's automatic test choice to depend on them, and the resolved test
when the policy names one. ``monitor.drift.sample_rows`` optionally caps both sides (off by
default; a sample changes scores and so may change verdicts against Evidently's report).

``feature_drift_report`` runs Evidently's ``Report`` with one ``ValueDrift`` per column and reads
Evidently's test verdicts. It is the reference the lean path is tested against.

Method choice follows Evidently: the policy's ``method``/``threshold`` for numerical columns,
``cat_method``/``cat_threshold`` for categorical ones, ``text_method``/``text_threshold`` for text,
``per_column`` overrides, and Evidently's automatic choice when none is given.

A column that cannot be tested (wrong type, no values, too few values, a test that cannot run on
it) gets a ``not_tested: <why>`` status instead of failing the check of the whole model.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TypeVar

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.legacy.calculations.stattests.registry import StatTest, get_registered_stattest
from evidently.legacy.core import ColumnType
from evidently.metrics import ValueDrift
from pandas.api import types as ptypes
from sklearn.exceptions import ConvergenceWarning

from reoptd.errors import DataError
from reoptd.monitor._fast import as_categories, wasserstein_norm
from reoptd.plugins import DRIFT_METHODS, DriftMethod
from reoptd.policy import Policy
from reoptd.threads import thread_budget

TESTED = "tested"
MIN_TEXT_VALUES = 10  # the text tests train a domain classifier on half of both sides
#: a window of at least this many cells (rows x columns) has its columns tested in parallel;
#: below, a thread hand-off costs more than it saves
PARALLEL_CELLS = 2_000_000
_FEW_DISTINCT = 5  # Evidently's automatic choice only looks at distinct counts up to this
# What a method needs and allows comes from its declaration (``reoptd.monitor.drift_methods``):
# ``min_values``, the fewest non-null values per side (Evidently's tests fail or mean nothing
# below); ``sorted_input``, its result depends only on the sorted values (they sort both sides
# themselves: given sorted input their own sorts are nearly free, and the reference is sorted
# once per champion); ``counts``, it only counts categories (``get_binned_data`` or the same
# ``value_counts`` lookups: pandas' category dtype counts its codes instead of hashing every
# string again; the counts, and so the scores, are the same).


T = TypeVar("T")
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def column_pool() -> ThreadPoolExecutor:
    """One pool per process for the columns of every check: the threads never exceed the
    thread budget (``REOPTD_THREADS`` or the cores), however many models check at once."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(thread_budget(), thread_name_prefix="reoptd-drift")
        return _pool


def _each(work: Callable[[str], T], columns: list[str], rows: int) -> list[T]:
    """``work`` on every column, on the column pool when the frame is large enough."""
    if rows * len(columns) < PARALLEL_CELLS or len(columns) < 2:
        return [work(column) for column in columns]
    return list(column_pool().map(work, columns))


def _declared(name: str) -> DriftMethod | None:
    return DRIFT_METHODS.get(name) if name in DRIFT_METHODS else None


@dataclass(frozen=True)
class FeatureDrift:
    """One column's drift: Evidently's score and verdict, or why it was not tested."""

    score: float | None
    drifted: bool
    method: str | None
    threshold: float | None
    status: str = TESTED

    @property
    def tested(self) -> bool:
        return self.status == TESTED

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def untested(why: str, method: str | None = None) -> FeatureDrift:
    return FeatureDrift(None, False, method, None, f"not_tested: {why}")


def column_kind(policy: Policy, column: str) -> ColumnType:
    if column in policy.features.categorical:
        return ColumnType.Categorical
    if column in policy.features.text:
        return ColumnType.Text
    return ColumnType.Numerical


def column_spec(policy: Policy, column: str) -> tuple[str | None, float | None]:
    """The (method, threshold) the policy asks for on ``column``; None lets Evidently choose."""
    spec = policy.monitor.drift
    kind = column_kind(policy, column)
    if kind == ColumnType.Categorical:
        method, threshold = spec.cat_method, spec.cat_threshold
    elif kind == ColumnType.Text:
        method, threshold = spec.text_method, spec.text_threshold
    else:
        method, threshold = spec.method, spec.threshold
    override = spec.per_column.get(column)
    if override is not None:
        method = override.method or method
        threshold = override.threshold if override.threshold is not None else threshold
    return method, threshold


def monitored_columns(policy: Policy) -> list[str]:
    """Model features, then monitor-only text columns."""
    return policy.features.monitored


def typed(values: pd.Series, kind: ColumnType) -> tuple[pd.Series | None, str | None]:
    """``values`` as the test for ``kind`` needs them (no NaN, no inf), or why they cannot be.

    Numerical columns must hold numbers (not booleans, not text): converting text to numbers
    silently would test something else than what production sent.
    """
    if kind == ColumnType.Numerical:
        if not ptypes.is_numeric_dtype(values) and values.isna().all():
            return pd.Series([], dtype=float), None  # all missing (e.g. None objects): no values
        if ptypes.is_bool_dtype(values) or not ptypes.is_numeric_dtype(values):
            sample = values[values.notna()].head(1).tolist()
            example = f" (e.g. {sample[0]!r})" if sample else ""
            return None, f"wrong type: numerical column holds {values.dtype}{example}"
        array = values.to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(array)
        if finite.all():
            return pd.Series(array, copy=False), None
        return pd.Series(array[finite], copy=False), None
    if kind == ColumnType.Categorical:
        return as_categories(values), None
    present = values[values.notna()] if values.hasnans else values
    if kind == ColumnType.Text and ptypes.is_numeric_dtype(values) and not present.empty:
        return None, f"wrong type: text column holds {values.dtype}"
    # categories and text compare as strings, whatever a file's reader made of them
    if not (ptypes.is_string_dtype(present) and ptypes.infer_dtype(present) == "string"):
        present = present.astype(str)
    return present, None


def _distinct(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.CategoricalDtype):  # as_categories keeps only present ones
        return np.asarray(values.cat.categories, dtype=object)
    return pd.unique(values.to_numpy())


def _few_distinct(values: pd.Series) -> frozenset[object] | None:
    """The distinct values if there are at most ``_FEW_DISTINCT`` of them, else None."""
    distinct = _distinct(values)
    return frozenset(distinct) if len(distinct) <= _FEW_DISTINCT else None


@dataclass
class _ReferenceColumn:
    kind: ColumnType
    values: pd.Series | None  # cleaned: no NaN, no inf; None when the reference is unusable
    problem: str | None  # why the reference side cannot be tested
    distinct: frozenset[object] | None  # few distinct values (auto choice), None: many
    method: str | None
    threshold: float | None
    test: StatTest | None  # resolved once when the policy names the method
    fast: dict[str | None, pd.Series] = field(default_factory=dict)  # by _fast_form, made once
    std: float | None = None  # np.std of the values, for the normed Wasserstein distance

    def values_for(self, test: StatTest) -> pd.Series:
        """The reference as ``test`` runs fastest on it (same values, same result)."""
        assert self.values is not None
        form = _fast_form(test, self.kind)
        if form is None and not isinstance(self.values.dtype, pd.CategoricalDtype):
            return self.values
        if form not in self.fast:
            self.fast[form] = _as_form(self.values, form)
        return self.fast[form]


def _fast_form(test: StatTest, kind: ColumnType) -> str | None:
    method = _declared(test.name)
    if method is not None and method.sorted_input and kind == ColumnType.Numerical:
        return "sorted"
    if method is not None and method.counts and kind == ColumnType.Categorical:
        return "category"
    return None


def _as_form(values: pd.Series, form: str | None) -> pd.Series:
    if form == "sorted":
        return pd.Series(np.sort(values.to_numpy()), copy=False)
    if form == "category":
        return (
            values if isinstance(values.dtype, pd.CategoricalDtype) else values.astype("category")
        )
    if isinstance(values.dtype, pd.CategoricalDtype):  # a test that does not only count
        return pd.Series(values.to_numpy(dtype=object), copy=False)
    return values


def _run(test: StatTest, ref: _ReferenceColumn, cur: pd.Series) -> tuple[float, bool, float]:
    """(score, drifted, threshold) of ``test``, as Evidently's ``StatTest`` call gives them."""
    if test.name == "wasserstein" and ref.kind == ColumnType.Numerical:
        assert ref.values is not None
        threshold = test.default_threshold if ref.threshold is None else ref.threshold
        reference = ref.values_for(test).to_numpy()
        score = wasserstein_norm(reference, ref.std or 0.0, cur.to_numpy())
        return score, score >= threshold, threshold
    fast = _as_form(cur, _fast_form(test, ref.kind))
    outcome = test(ref.values_for(test), fast, ref.kind, ref.threshold)
    return outcome.drift_score, bool(outcome.drifted), outcome.actual_threshold


def _prepare(
    values: pd.Series | None,
    kind: ColumnType,
    method: str | None,
    threshold: float | None,
    name: str,
) -> _ReferenceColumn:
    """The reference side of one column, computed once per champion."""
    test = None
    if method is not None:
        try:
            test = get_registered_stattest(method, kind)
        except ValueError as exc:
            raise DataError(f"drift method for {name!r}: {exc}", column=name) from None
    if values is None:
        problem: str | None = "reference has no such column"
        return _ReferenceColumn(kind, None, problem, None, method, threshold, test)
    clean, problem = typed(values, kind)
    if clean is not None and clean.empty:
        clean, problem = None, "reference has no values"
    elif problem is not None:
        problem = f"reference: {problem}"
    distinct = None
    if clean is not None and kind == ColumnType.Numerical:
        # sorted once: the distinct values come from it cheaper than by hashing, and the tests
        # that read sorted values (K-S, Wasserstein) reuse it
        ordered = np.sort(clean.to_numpy())
        distinct = _few_sorted(ordered)
        column = _ReferenceColumn(kind, clean, problem, distinct, method, threshold, test)
        column.fast["sorted"] = pd.Series(ordered, copy=False)
        column.std = float(np.std(clean.to_numpy()))
        return column
    if clean is not None and kind != ColumnType.Text:
        distinct = _few_distinct(clean)
    return _ReferenceColumn(kind, clean, problem, distinct, method, threshold, test)


def _few_sorted(ordered: np.ndarray) -> frozenset[object] | None:
    """The distinct values of sorted ``ordered`` if at most ``_FEW_DISTINCT``, else None."""
    starts = np.flatnonzero(ordered[1:] != ordered[:-1])
    if len(starts) < _FEW_DISTINCT:
        return frozenset(ordered[np.r_[0, starts + 1]])
    return None


def _sample(values: pd.Series, rows: int | None) -> pd.Series:
    if rows is None or len(values) <= rows:
        return values
    picked = np.random.default_rng(0).choice(len(values), rows, replace=False)
    picked.sort()
    return values.iloc[picked].reset_index(drop=True)


def _compare(ref: _ReferenceColumn, current: pd.Series | None, name: str) -> FeatureDrift:
    """One column's drift (prediction and target drift call it; warnings quieted here)."""
    with _quiet():
        return _test_column(ref, current, name)


def _test_column(ref: _ReferenceColumn, current: pd.Series | None, name: str) -> FeatureDrift:
    method = ref.test.display_name if ref.test is not None else ref.method
    if ref.values is None:
        return untested(ref.problem or "reference unusable", method)
    if current is None:
        return untested("column missing from the window", method)
    cur, problem = typed(current, ref.kind)
    if cur is None:
        return untested(problem or "unusable", method)
    if cur.empty:
        return untested(f"no values ({len(current)} rows, all missing)", method)
    test = ref.test
    if test is None:
        test = _default_test(ref, cur)
    declared = _declared(test.name)
    need = declared.min_values if declared is not None else 1
    need = MIN_TEXT_VALUES if ref.kind == ColumnType.Text else need
    if len(cur) < need or len(ref.values) < need:
        side = "window" if len(cur) < need else "reference"
        have = min(len(cur), len(ref.values))
        return untested(
            f"too few values: {test.display_name} needs {need} per side, the {side} has {have}",
            test.display_name,
        )
    try:
        score, drifted, threshold = _run(test, ref, cur)  # under _quiet() in the caller
    except (ValueError, ZeroDivisionError, FloatingPointError, np.linalg.LinAlgError) as exc:
        return untested(f"{test.display_name} cannot run: {_why(ref, cur, exc)}", test.display_name)
    score = float(score)
    if not np.isfinite(score):
        return untested(
            f"{test.display_name} gave no score: {_why(ref, cur, None)}", test.display_name
        )
    return FeatureDrift(
        score=score,
        drifted=drifted,
        method=test.display_name,
        threshold=float(threshold),
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Warnings the checks report otherwise. Entered by the calling thread around all the
    columns (``catch_warnings`` is process-wide: the pool's threads must not enter it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NaN scores are reported as untested
        warnings.simplefilter("ignore", ConvergenceWarning)  # Evidently's text classifier
        yield


def _why(ref: _ReferenceColumn, cur: pd.Series, exc: Exception | None) -> str:
    if ref.distinct is not None and len(ref.distinct) == 1:
        values = frozenset(_distinct(cur))
        if values <= ref.distinct:
            value = next(iter(ref.distinct))
            value = value.item() if isinstance(value, np.generic) else value
            return f"constant column (always {value!r})"
    return str(exc) if exc is not None else "undefined for these values"


@dataclass
class ReferenceStats:
    """The reference side of the lean drift path as it is stored with a version (computed once
    per champion, when its reference is packed), so a restart or another replica reads it
    instead of cleaning, sorting and counting the reference again.

    ``numerical``: per column, its cleaned values' count, ``np.std`` and distinct values when
    they are at most 5 (else None); the sorted values come from ``sorted_values`` on demand
    (read from the stored reference column by column).
    ``categorical``: per column, its categories (as the strings Evidently compares, in order of
    first appearance) and their counts. Columns that cannot be tested are not in it.
    """

    numerical: dict[str, tuple[int, float, list[float] | None]] = field(default_factory=dict)
    categorical: dict[str, tuple[list[str], list[int]]] = field(default_factory=dict)
    sorted_values: Callable[[str], np.ndarray] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, policy: Policy, reference: pd.DataFrame) -> tuple[ReferenceStats, dict]:
        """The statistics of ``reference`` under ``policy``'s column kinds, with the sorted
        values of its numerical columns (to be stored beside them)."""
        stats = cls()
        ordered: dict[str, np.ndarray] = {}
        for column in monitored_columns(policy):
            kind = column_kind(policy, column)
            if column not in reference.columns or kind == ColumnType.Text:
                continue
            clean, problem = typed(reference[column], kind)
            if clean is None or problem is not None or clean.empty:
                continue  # the check says why, from the reference itself
            if kind == ColumnType.Numerical:
                values = clean.to_numpy()
                ordered[column] = np.sort(values)
                few = _few_sorted(ordered[column])
                few_list = None if few is None else sorted(float(v) for v in few)  # type: ignore[arg-type]
                stats.numerical[column] = (len(values), float(np.std(values)), few_list)
            else:
                categories = [str(c) for c in clean.cat.categories]
                counts = np.bincount(clean.cat.codes.to_numpy(), minlength=len(categories))
                stats.categorical[column] = (categories, [int(c) for c in counts])
        stats.sorted_values = ordered.__getitem__
        return stats, ordered

    def to_dict(self) -> dict[str, object]:
        return {
            "numerical": {c: list(v) for c, v in self.numerical.items()},
            "categorical": {
                c: {"categories": v[0], "counts": v[1]} for c, v in self.categorical.items()
            },
        }

    @classmethod
    def from_dict(
        cls, data: dict, sorted_values: Callable[[str], np.ndarray] | None
    ) -> ReferenceStats:
        return cls(
            numerical={
                c: (int(v[0]), float(v[1]), None if v[2] is None else [float(x) for x in v[2]])
                for c, v in data.get("numerical", {}).items()
            },
            categorical={
                c: (list(v["categories"]), [int(n) for n in v["counts"]])
                for c, v in data.get("categorical", {}).items()
            },
            sorted_values=sorted_values,
        )


def _from_stats(
    stats: ReferenceStats,
    column: str,
    kind: ColumnType,
    method: str | None,
    threshold: float | None,
) -> _ReferenceColumn | None:
    """The reference side of ``column`` from stored statistics, when the test that will run on
    it only reads sorted values (numerical) or counts (categorical): the same numbers as from
    the reference rows. None: prepare it from the rows."""
    test = None
    if method is not None:
        try:
            test = get_registered_stattest(method, kind)
        except ValueError as exc:
            raise DataError(f"drift method for {column!r}: {exc}", column=column) from None
        declared = _declared(test.name)
        if declared is None or _fast_form(test, kind) is None:
            return None
    if kind == ColumnType.Numerical and column in stats.numerical:
        if stats.sorted_values is None:
            return None
        count, std, few = stats.numerical[column]
        if few is not None and test is None:
            return None  # Evidently's choice then depends on the window: it may need the rows
        # Evidently's own choice for many distinct values: K-S or Wasserstein, both sorted
        distinct = None if few is None else frozenset(np.asarray(few, dtype=float))
        ordered = np.asarray(stats.sorted_values(column), dtype=float)[:count]
        series = pd.Series(ordered, copy=False)
        ref = _ReferenceColumn(kind, series, None, distinct, method, threshold, test)
        ref.fast["sorted"] = series
        ref.std = std
        return ref
    if kind == ColumnType.Categorical and column in stats.categorical:
        categories, counts = stats.categorical[column]
        if test is None and sum(counts) <= 1000:
            return None  # Evidently may choose the z test, which reads the rows
        # else its choice is Jensen-Shannon, which counts
        codes = np.repeat(np.arange(len(categories)), counts)
        values = pd.Series(
            pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object)),  # type: ignore[arg-type]
            copy=False,
        )
        distinct = frozenset(categories) if len(categories) <= _FEW_DISTINCT else None
        return _ReferenceColumn(kind, values, None, distinct, method, threshold, test)
    return None


class DriftDetector:
    """Drift of current windows against one fixed reference sample (a champion's).

    Build it once per champion version; ``check`` is then called for every window. Columns are
    the policy's features plus its monitor-only text columns.
    """

    def __init__(
        self, policy: Policy, reference: pd.DataFrame, stats: ReferenceStats | None = None
    ) -> None:
        """``stats``: the reference's stored statistics (``ReferenceStats``); the columns they
        cover are not cleaned, sorted or counted again. Unless ``monitor.drift.sample_rows``
        samples the reference: the stored statistics are of all its rows."""
        self.sample_rows: int | None = policy.monitor.drift.sample_rows
        if self.sample_rows is not None and len(reference) > self.sample_rows:
            stats = None

        def one(column: str) -> _ReferenceColumn:
            kind = column_kind(policy, column)
            method, threshold = column_spec(policy, column)
            if stats is not None:
                stored = _from_stats(stats, column, kind, method, threshold)
                if stored is not None:
                    return stored
            values = reference[column] if column in reference.columns else None
            if values is not None:
                values = _sample(values, self.sample_rows)
            return _prepare(values, kind, method, threshold, column)

        names = monitored_columns(policy)
        self.columns: dict[str, _ReferenceColumn] = dict(
            zip(names, _each(one, names, len(reference)), strict=True)
        )

    def check(
        self, current: pd.DataFrame, columns: list[str] | None = None
    ) -> dict[str, FeatureDrift]:
        """Each column's drift (of ``columns`` only, if given); a large window's columns are
        tested on the shared column pool (numpy and SciPy release the GIL), a few at a time, so
        only the columns in flight hold their sorted or counted forms."""

        def one(column: str) -> FeatureDrift:
            values = current[column] if column in current.columns else None
            if values is not None:
                values = _sample(values, self.sample_rows)
            return _test_column(self.columns[column], values, column)

        names = list(self.columns) if columns is None else columns
        with _quiet():
            return dict(zip(names, _each(one, names, len(current)), strict=True))

    def check_chunks(
        self, read: Callable[[list[str]], pd.DataFrame], chunk: int = 100
    ) -> dict[str, FeatureDrift]:
        """``check`` of a window read ``chunk`` columns at a time by ``read(columns)`` (e.g. a
        Parquet file's column projection): a wide window is never in memory whole, only one
        chunk of its columns and the forms of the columns in flight. Same verdicts."""
        if chunk < 1:
            raise ValueError(f"chunk must be at least 1 column, not {chunk}")
        names = list(self.columns)
        out: dict[str, FeatureDrift] = {}
        for start in range(0, len(names), chunk):
            part = names[start : start + chunk]
            out.update(self.check(read(part), part))
        return out


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
        self.kind = kind
        self.reference = _prepare(series, kind, None, None, "prediction")

    def check(self, current_output: np.ndarray) -> FeatureDrift:
        return _compare(self.reference, pd.Series(current_output), "prediction")


def feature_drift(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """One-shot lean drift of ``current`` against ``reference``."""
    return DriftDetector(policy, reference).check(current)


def data_definition(policy: Policy) -> DataDefinition:
    return DataDefinition(
        numerical_columns=policy.features.numerical,
        categorical_columns=policy.features.categorical,
        text_columns=policy.features.text or None,
    )


def feature_drift_report(
    policy: Policy, reference: pd.DataFrame, current: pd.DataFrame
) -> dict[str, FeatureDrift]:
    """The same comparison through Evidently's ``Report`` (slower; renders widgets)."""
    definition = data_definition(policy)
    columns = monitored_columns(policy)
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


def _default_test(ref: _ReferenceColumn, current: pd.Series) -> StatTest:
    """Evidently's automatic test choice (``registry._get_default_stattest``) without its
    ``nunique`` scan of both sides: the distinct count matters only when it is at most 5, which
    the reference's cached distinct values decide for most columns."""
    from evidently.legacy.calculations import stattests

    kind = ref.kind
    assert ref.values is not None
    if kind == ColumnType.Text:
        if len(ref.values) > 1000:
            return stattests.abs_text_content_drift_stat_test
        return stattests.perc_text_content_drift_stat_test
    if ref.distinct is None:
        distinct = _FEW_DISTINCT + 1
    else:
        distinct = len(ref.distinct | frozenset(_distinct(current)))
    if len(ref.values) <= 1000:
        if distinct <= 2:
            return stattests.z_stat_test
        if kind == ColumnType.Categorical or distinct <= _FEW_DISTINCT:
            return stattests.chi_stat_test
        return stattests.ks_stat_test
    if kind == ColumnType.Categorical or distinct <= _FEW_DISTINCT:
        return stattests.jensenshannon_stat_test
    return stattests.wasserstein_stat_test
