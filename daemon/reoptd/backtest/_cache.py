"""Content-addressed caches that make repeated backtests (a policy search's trials) cheap.

Everything a backtest computes is a pure function of its inputs, so each result is stored under
a digest of exactly those inputs and computed once:

* a **retrain** (the periodic baseline's and the loop's own ``retrain`` step) is a function of
  its training rows, the model's parameters (with their seed) and the code's versions: the key
  hashes the rows' bytes (features and target), ``train.family``/``estimator``/``params``, the
  features and the library versions. Kept in memory (LRU) and, with ``directory``, on disk as
  the model's artifact bytes, so later processes (trials on other executors) reuse them;
* a window's **drift statistics** are a function of the champion's reference sample, the drift
  settings and the window's rows: one ``DriftDetector.check`` per (reference, window);
* a model's **predictions** are a function of the model and each row's features: a champion's
  outputs over the whole history are computed once and every window, backfill re-score and step
  score reads them by the rows' hashes (rows not in the history fall back to ``predict``).

Keys hash values and dtypes, never object identity, so two trials reaching the same champion
from different policies share its work, and a changed row, parameter or library misses.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import reoptd
from reoptd.data import naive_utc
from reoptd.errors import ArtifactError
from reoptd.models import Model, load_model
from reoptd.monitor import (
    Champion,
    DriftDetector,
    FeatureDrift,
    Quality,
    QualityReference,
    evaluate,
)
from reoptd.policy import Costs, Policy

log = logging.getLogger("reoptd.backtest")

#: bumped when what a key covers or how an entry is stored changes
CACHE_FORMAT = 2


def _versions() -> str:
    found = [f"reoptd={reoptd.__version__}", f"format={CACHE_FORMAT}"]
    for package in ("scikit-learn", "numpy", "pandas", "torch"):
        try:
            found.append(f"{package}={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}=none")
    return ",".join(found)


CODE_VERSION = _versions()


def row_hashes(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """One 64-bit hash per row of ``columns`` (values and their types, not the index)."""
    present = [c for c in columns if c in frame.columns]
    if not present or frame.empty:
        return np.zeros(len(frame), dtype=np.uint64)
    return pd.util.hash_pandas_object(frame[present], index=False).to_numpy()


def frame_digest(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """sha256 of ``columns`` of ``frame``: names, dtypes, row count and every row's values."""
    present = [c for c in columns if c in frame.columns]
    picked = [frame[c] for c in present]  # each column once: a frame's getitem is not free
    digest = hashlib.sha256()
    names = [(c, _dtype_name(s.dtype)) for c, s in zip(present, picked, strict=True)]
    digest.update(repr(names).encode())
    digest.update(f"rows={len(frame)}".encode())
    for column in picked:  # column by column: a numeric column's bytes need no hashing pass
        tz = isinstance(column.dtype, pd.DatetimeTZDtype)  # the zone is in the dtype above
        values = naive_utc(column) if tz else column.to_numpy()
        if values.dtype.kind in "biufcmM":
            digest.update(np.ascontiguousarray(values).tobytes())
        elif pd.api.types.infer_dtype(values, skipna=False) == "string":  # str only: its text
            digest.update(np.fromiter(map(len, values), np.int64, len(values)).tobytes())
            digest.update("".join(values).encode("utf-8", "surrogatepass"))
        else:
            digest.update(pd.util.hash_array(values.astype(object)).tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1024)
def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, once per dtype (numpy builds the name anew each time)."""
    return str(dtype)


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def retrain_key(policy: Policy, rows: pd.DataFrame) -> str:
    """The content address of fitting the policy's model on ``rows``."""
    columns = [*policy.features.all, policy.target]
    return digest("retrain", CODE_VERSION, retrain_spec(policy), frame_digest(rows, columns))


def retrain_spec(policy: Policy) -> str:
    """What a retrain's result depends on besides its rows: the model's family, estimator,
    parameters (with their seed), task, target and features."""
    train = policy.train
    return json.dumps(
        {
            "family": train.family,
            "estimator": train.estimator,
            "params": train.params,
            "task": policy.task,
            "target": policy.target,
            "features": policy.features.model_dump(mode="json"),
        },
        sort_keys=True,
        default=str,
    )


@dataclass
class CacheStats:
    """Hits and misses per kind of entry: ``retrain``, ``drift`` (features, outputs, labels),
    ``quality`` (a window's data quality), ``outputs`` (a model's predictions over the
    history), ``scores`` (a periodic model's on its step), ``validate``, ``estimator``,
    ``estimate`` (a window's label-free estimate), ``evaluate`` (a backfill's re-scoring),
    ``step`` (a contender's score of a step), ``periodic`` (a step's training rows' key),
    ``report``."""

    hits: dict[str, int] = field(default_factory=dict)
    misses: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str, hit: bool) -> None:
        table = self.hits if hit else self.misses
        table[kind] = table.get(kind, 0) + 1

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {"hits": dict(self.hits), "misses": dict(self.misses)}


#: kinds of entries of a few numbers or rows each, kept in their own LRU of
#: ``items * SMALL_PER_ITEM`` entries (one per window or step: many, and tiny)
SMALL_KINDS = frozenset({"estimate", "evaluate", "step", "quality", "periodic"})
SMALL_PER_ITEM = 16


class BacktestCache:
    """Results of backtest work by content address: an in-memory LRU of ``items`` entries
    (a model, a window's drift, a history's predictions: kilobytes to a few megabytes each),
    and retrained models and whole reports also under ``directory`` when given (one file per
    key, written whole then renamed).

    Share one object between the backtests of a policy search (``run_backtest(cache=...)``);
    give trials in other processes the same ``directory``. Not thread-safe: one backtest at a
    time per object.
    """

    def __init__(
        self, directory: Path | None = None, *, items: int = 4096, reports: bool = True
    ) -> None:
        self.directory = directory
        self.items = items
        #: a backtest repeated exactly (same history, policy and options) returns the first
        #: one's report without replaying; False: always replay (through the other entries)
        self.reports = reports
        self.stats = CacheStats()
        self._memory: OrderedDict[str, Any] = OrderedDict()
        self._small: OrderedDict[str, Any] = OrderedDict()
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    def _table(self, key: str) -> tuple[OrderedDict[str, Any], int]:
        """Small entries (a few numbers, a step's predictions) have their own, larger LRU, so
        they never push a model or a window's drift out of ``items``."""
        if key.split(":", 1)[0] in SMALL_KINDS:
            return self._small, self.items * SMALL_PER_ITEM
        return self._memory, self.items

    def get(self, key: str) -> Any | None:
        table, _ = self._table(key)
        value = table.get(key)
        if value is not None:
            table.move_to_end(key)
        return value

    def put(self, key: str, value: Any) -> None:
        table, bound = self._table(key)
        table[key] = value
        table.move_to_end(key)
        while len(table) > bound:
            table.popitem(last=False)

    def lookup(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        """The entry under ``key``, computed (and kept) on a miss."""
        full = f"{kind}:{key}"
        value = self.get(full)
        self.stats.count(kind, value is not None)
        if value is None:
            value = compute()
            self.put(full, value)
        return value

    def retrained(
        self, policy: Policy, rows: pd.DataFrame, fit: Callable[[], Model], key: str | None = None
    ) -> tuple[str, Model, bool]:
        """(key, model, hit): the model ``fit()`` trains on ``rows``, trained once per key
        (``key``: ``retrain_key(policy, rows)`` when the caller has it already)."""
        key = retrain_key(policy, rows) if key is None else key
        full = f"retrain:{key}"
        model = self.get(full)
        if model is None:
            model = self._read(key)
            if model is not None:
                self.put(full, model)
        self.stats.count("retrain", model is not None)
        if model is not None:
            return key, model, True
        model = fit()
        self.put(full, model)
        self._write(key, model)
        return key, model, False

    def kept_retrain(self, key: str) -> Model | None:
        """The model retrained under ``key`` (``retrain_key``) if it is kept, in memory or on
        disk, counted as a retrain hit; None (nothing counted) when it is not."""
        full = f"retrain:{key}"
        model = self.get(full)
        if model is None:
            model = self._read(key)
            if model is None:
                return None
            self.put(full, model)
        self.stats.count("retrain", True)
        return model

    def report(self, key: str) -> dict[str, Any] | None:
        """The report of the backtest ``key`` names (``report_key``), if one was kept; a hit
        says so in its ``cache`` field."""
        found = self.get(f"report:{key}")
        path = None if self.directory is None else self.directory / "reports" / f"{key}.json"
        if found is None and path is not None and path.exists():
            try:
                found = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.warning("backtest cache %s unreadable, replaying: %s", path, exc)
        self.stats.count("report", found is not None)
        if found is None:
            return None
        self.put(f"report:{key}", found)
        copy: dict[str, Any] = json.loads(json.dumps(found))
        copy["cache"] = {"hits": {"report": 1}, "misses": {}}
        return copy

    def keep_report(self, key: str, report: dict[str, Any]) -> None:
        kept = json.loads(json.dumps({k: v for k, v in report.items() if k != "cache"}))
        self.put(f"report:{key}", kept)
        if self.directory is not None:
            _write_atomic(self.directory / "reports" / f"{key}.json", json.dumps(kept).encode())

    def _path(self, key: str) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / key[:2] / f"{key}.model"

    def _read(self, key: str) -> Model | None:
        path = self._path(key)
        if path is None or not path.exists():
            return None
        try:
            return load_model(path.read_bytes())
        except (OSError, ArtifactError) as exc:  # a torn or foreign file: retrain, rewrite
            log.warning("backtest cache %s unreadable, retraining: %s", path, exc)
            return None

    def _write(self, key: str, model: Model) -> None:
        path = self._path(key)
        if path is None:
            return
        _write_atomic(path, model.to_bytes())


def _write_atomic(path: Path, data: bytes) -> None:
    """Written whole then renamed: a reader (another trial's process) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def report_key(
    frame: pd.DataFrame, label_at: np.ndarray, policy: Policy, warmup: object, step: object
) -> str:
    """The content address of a whole backtest: the history's rows and label times, the policy
    and the step options (``str`` of the spans)."""
    return digest(
        "report",
        CODE_VERSION,
        frame_digest(frame, list(frame.columns)),
        hashlib.sha256(np.ascontiguousarray(label_at).tobytes()).hexdigest(),
        policy.model_dump_json(),
        f"warmup={warmup} step={step}",
    )


class HistoryRows:
    """Where a frame's rows sit in the history, for the prediction memo. Rows keep their time
    column, so each row's position is found by binary search on the history's times and then
    proved by comparing its feature values (and dtypes) with the history's there; rows without
    the time column are found by the hash of their features. A row found nowhere: None."""

    def __init__(self, frame: pd.DataFrame, features: Sequence[str], time_column: str) -> None:
        self.frame = frame
        self.features = [c for c in features if c in frame.columns]
        self.time_column = time_column
        self.times = naive_utc(frame[time_column])
        self.values = {c: frame[c].to_numpy() for c in self.features}
        self.dtypes = {c: frame[c].dtype for c in self.features}
        self._sorted: np.ndarray | None = None
        self._first: np.ndarray | None = None
        self.digest = frame_digest(frame, self.features)

    def positions(self, rows: pd.DataFrame) -> np.ndarray | None:
        """Each row's position in the history, or None if some row is not a history row."""
        if any(c not in rows.columns for c in self.features) or not len(self.times):
            return None
        if rows.empty:
            return np.zeros(0, dtype=np.int64)
        if any(rows[c].dtype != self.dtypes[c] for c in self.features):
            return None  # same values under another type may predict differently
        if self.time_column in rows.columns:
            at = self._by_time(rows)
            if at is not None:
                return at
        return self._by_hash(rows)

    def _by_time(self, rows: pd.DataFrame) -> np.ndarray | None:
        column = rows[self.time_column]
        if not isinstance(column.dtype, pd.DatetimeTZDtype):
            return None
        at = np.searchsorted(self.times, naive_utc(column))
        if (at >= len(self.times)).any():
            return None
        for name in self.features:
            if not _same(self.values[name][at], rows[name].to_numpy()):
                return None  # a tie of times, or values that differ: prove it by hash
        return at

    def _by_hash(self, rows: pd.DataFrame) -> np.ndarray | None:
        if self._sorted is None:
            hashes = row_hashes(self.frame, self.features)
            self._sorted, self._first = np.unique(hashes, return_index=True)
        assert self._first is not None
        hashes = row_hashes(rows, self.features)
        at = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
        if not (self._sorted[at] == hashes).all():
            return None
        result: np.ndarray = self._first[at]
        return result


def _same(left: np.ndarray, right: np.ndarray) -> bool:
    """Element-wise equal, a missing value equal to a missing value."""
    equal = left == right
    if isinstance(equal, np.ndarray) and equal.all():
        return True
    both_missing = pd.isna(left) & pd.isna(right)
    return bool(np.all(np.asarray(equal) | both_missing))


@dataclass
class _Outputs:
    pred: np.ndarray
    score: np.ndarray | None


class MemoModel:
    """A model whose predictions over the history are computed once (on first use) and read by
    row; everything else is the wrapped model's. Predictions are row-wise, so a window's are
    the history's at its rows' positions; rows the history lacks are predicted as usual."""

    def __init__(self, model: Model, identity: str, rows: HistoryRows, cache: BacktestCache):
        self.model = model
        self.identity = identity
        self._rows = rows
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _outputs(self) -> _Outputs:
        def compute() -> _Outputs:
            frame = self._rows.frame
            return _Outputs(self.model.predict(frame), self.model.predict_score(frame))

        key = digest(self.identity, self._rows.digest)
        outputs: _Outputs = self._cache.lookup("outputs", key, compute)
        return outputs

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        at = self._rows.positions(frame)
        if at is None:
            return self.model.predict(frame)
        return self._outputs().pred[at]

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        at = self._rows.positions(frame)
        if at is None:
            return self.model.predict_score(frame)
        score = self._outputs().score
        return None if score is None else score[at]


def model_identity(model: Model) -> str:
    """A fitted model's content address: the sha256 of its artifact bytes."""
    return hashlib.sha256(model.to_bytes()).hexdigest()


def unwrap(model: Any) -> Any:
    """The model under a ``MemoModel`` (steps of a run get the real one)."""
    return model.model if isinstance(model, MemoModel) else model


class _CachedDrift(DriftDetector):
    """A champion's ``DriftDetector`` whose ``check`` runs once per (reference, window)."""

    def __init__(self, inner: DriftDetector, cache: BacktestCache, prefix: str) -> None:
        # the inner detector's prepared reference columns, not a second preparation
        self.sample_rows = inner.sample_rows
        self.columns = inner.columns
        self._inner = inner
        self._cache = cache
        self._prefix = prefix

    def check(
        self, current: pd.DataFrame, columns: list[str] | None = None
    ) -> dict[str, FeatureDrift]:
        names = list(self.columns) if columns is None else columns
        key = digest(self._prefix, ",".join(names), frame_digest(current, names))
        found: dict[str, FeatureDrift] = self._cache.lookup(
            "drift", key, lambda: self._inner.check(current, columns)
        )
        return dict(found)  # FeatureDrift is frozen; the dict is the caller's


class _CachedQuality(QualityReference):
    """A champion's ``QualityReference`` whose ``check`` runs once per (reference, window):
    the window's column names (extra columns are reported) and its monitored columns'
    values and dtypes (a changed type is reported)."""

    def __init__(self, inner: QualityReference, cache: BacktestCache, prefix: str) -> None:
        self.__dict__.update(inner.__dict__)  # the inner reference's ranges and categories
        self._inner = inner
        self._cache = cache
        self._prefix = prefix

    def check(self, window: pd.DataFrame) -> Quality:
        names = repr(list(window.columns))
        key = digest(self._prefix, names, frame_digest(window, self.columns))
        found: Quality = self._cache.lookup("quality", key, lambda: self._inner.check(window))
        return copy.deepcopy(found)  # a Quality is mutable: the caller's own


def _array_key(values: np.ndarray | pd.Series) -> str:
    array = np.asarray(values)
    if array.dtype == object:
        return frame_digest(pd.DataFrame({"v": array}), ["v"])
    return digest(
        str(array.dtype), hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
    )


class _CachedOneDrift:
    """A one-column drift test (the champion's outputs, the labels) that runs once per
    (reference, window's values); everything else is the wrapped test's."""

    def __init__(self, inner: Any, cache: BacktestCache, prefix: str) -> None:
        self._inner = inner
        self._cache = cache
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def check(self, current: np.ndarray | pd.Series) -> FeatureDrift:
        key = digest(self._prefix, _array_key(np.asarray(current)))
        found: FeatureDrift = self._cache.lookup("drift", key, lambda: self._inner.check(current))
        return found


@dataclass
class CachedChampion(Champion):
    """A champion whose drift checks go through the cache (``dataclasses.replace`` with another
    reference, as ``monitor.reference`` does, keeps the cache and digests the new reference)."""

    cache: BacktestCache | None = field(default=None, repr=False)
    _reference_key: str | None = field(default=None, init=False, repr=False)
    _quality_key: str | None = field(default=None, init=False, repr=False)
    #: the digests of the whole reference and of its labels, taken once (every check uses them)
    _rows_key: str | None = field(default=None, init=False, repr=False)
    _labels_key: str | None = field(default=None, init=False, repr=False)

    def detector(self, policy: Policy) -> DriftDetector:
        inner = super().detector(policy)
        if self.cache is None:
            return inner
        if self._reference_key is None:
            self._reference_key = frame_digest(self.reference, list(inner.columns))
        settings = policy.monitor.drift.model_dump_json()
        kinds = json.dumps(policy.features.model_dump(mode="json"), sort_keys=True)
        prefix = digest("drift", CODE_VERSION, self._reference_key, settings, kinds)
        return _CachedDrift(inner, self.cache, prefix)

    def quality(self, policy: Policy) -> QualityReference:
        inner = super().quality(policy)
        if self.cache is None:
            return inner
        if self._quality_key is None:
            self._quality_key = frame_digest(self.reference, inner.columns)
        settings = json.dumps(
            [
                policy.monitor.quality.model_dump(mode="json"),
                policy.features.model_dump(mode="json"),
                sorted(inner.known, key=str),
            ],
            sort_keys=True,
        )
        prefix = digest("quality", CODE_VERSION, self._quality_key, settings)
        return _CachedQuality(inner, self.cache, prefix)

    def _identity(self) -> str:
        model = self.model
        return model.identity if isinstance(model, MemoModel) else model_identity(model)

    def estimator(self, policy: Policy) -> Any:
        """Calibrated once per (model, reference, calibration rows), not once per champion
        object: every trial reaching this champion reuses it."""
        if self.cache is None or self._estimator is not False:
            return super().estimator(policy)
        parts = [self._identity(), policy.task, policy.target]
        for rows in (self.reference, self.calibration):
            parts.append("none" if rows is None else frame_digest(rows, list(rows.columns)))
        key = digest("estimator", CODE_VERSION, *parts)
        found = self.cache.lookup("estimator", key, lambda: (Champion.estimator(self, policy),))
        # in a tuple: None (no estimator) is a result, not a miss
        self._estimator = _memo_estimates(found[0], self.cache, key)
        return self._estimator

    # the monitor's one-column tests are not exported: typed loosely, duck-typed wrappers
    def output_drift(self) -> Any:
        inner = super().output_drift()
        if self.cache is None:
            return inner
        if self._rows_key is None:
            self._rows_key = frame_digest(self.reference, list(self.reference.columns))
        prefix = digest("output drift", CODE_VERSION, self._identity(), self._rows_key)
        return _CachedOneDrift(inner, self.cache, prefix)

    def target_drift(self, policy: Policy) -> Any:
        inner = super().target_drift(policy)
        if inner is None or self.cache is None:
            return inner
        if self._labels_key is None:
            self._labels_key = _array_key(self.reference[policy.target].to_numpy())
        labels = self._labels_key
        prefix = digest("target drift", CODE_VERSION, policy.task, policy.target, labels)
        return _CachedOneDrift(inner, self.cache, prefix)


def _memo_estimates(estimator: Any, cache: BacktestCache, identity: str) -> Any:
    """A shallow copy of ``estimator`` (the same class, so the monitor's type checks hold)
    whose ``estimate`` runs once per (estimator, arguments): an estimate's band draws a
    thousand replicates per window, and a window's estimate depends on its arguments only
    (the replicates are seeded by the window's length)."""
    if estimator is None:
        return None
    inner = estimator.estimate
    memo = copy.copy(estimator)

    def estimate(*args: Any, **kwargs: Any) -> Any:
        parts = [_argument_key(a) for a in args]
        parts += [
            f"{k}={_argument_key(v)}" if _argument_key(v) else None for k, v in kwargs.items()
        ]
        keyed = [p for p in parts if p is not None]
        if len(keyed) < len(parts):
            return inner(*args, **kwargs)
        key = digest("estimate", CODE_VERSION, identity, *keyed)
        found = cache.lookup("estimate", key, lambda: inner(*args, **kwargs))
        return copy.deepcopy(found)  # an Estimate is mutable: the caller's own

    memo.estimate = estimate
    return memo


def _argument_key(value: Any) -> str | None:
    """A content key of one ``estimate`` argument; None: not one to key (compute anew)."""
    if value is None or isinstance(value, str | int | float | bool):
        return repr(value)
    if isinstance(value, list | tuple):
        return repr(list(value)) if all(isinstance(v, str) for v in value) else None
    if isinstance(value, pd.DataFrame):
        return frame_digest(value, list(value.columns))
    if isinstance(value, np.ndarray | pd.Series):
        return _array_key(value)
    if isinstance(value, MemoModel):
        return value.identity
    return None


def cached_champion(
    champion: Champion, cache: BacktestCache, rows: HistoryRows, identity: str
) -> CachedChampion:
    """``champion`` with memoized predictions and drift checks."""
    fields = {f.name: getattr(champion, f.name) for f in dataclasses.fields(champion) if f.init}
    fields["model"] = MemoModel(unwrap(champion.model), identity, rows, cache)
    for private in ("_detector", "_outputs", "_quality"):
        fields[private] = None
    fields["_estimator"] = fields["_target"] = False
    return CachedChampion(**fields, cache=cache)


class StepMemoModel:
    """A model scored on a few row sets (the periodic baseline's, one step each): predictions
    kept per (model, rows) content address, so a repeated backtest reads them back."""

    def __init__(self, model: Model, identity: str, cache: BacktestCache) -> None:
        self.model = model
        self.identity = identity
        self._cache = cache

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def _key(self, frame: pd.DataFrame) -> str:
        return digest(self.identity, frame_digest(frame, self.model.features))

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        pred: np.ndarray = self._cache.lookup(
            "scores", "pred:" + self._key(frame), lambda: self.model.predict(frame)
        )
        return pred

    def predict_score(self, frame: pd.DataFrame) -> np.ndarray | None:
        score: tuple[np.ndarray | None] = self._cache.lookup(
            "scores", "score:" + self._key(frame), lambda: (self.model.predict_score(frame),)
        )
        return score[0]  # in a tuple: None is a valid result, not a miss


def memo_evaluate(cache: BacktestCache) -> Callable[..., dict[str, float]]:
    """``monitor.evaluate`` once per (model, labelled rows' features and target, metrics,
    costs): the backfill re-scores each past window every cycle its labels grow, and a replay
    meets the same (champion, window) in every trial. Models that are not a ``MemoModel`` (no
    identity), and calls given precomputed scores, are evaluated as usual."""

    def measure(
        model: Any,
        frame: pd.DataFrame,
        target: str,
        names: list[str],
        costs: Costs | dict[str, float] | None = None,
        scores: np.ndarray | None = None,
    ) -> dict[str, float]:
        if not isinstance(model, MemoModel) or scores is not None:
            return evaluate(model, frame, target, names, costs, scores)
        memo: Any = model  # a Model in all but name
        if isinstance(costs, Costs):
            spent = costs.model_dump_json()
        else:
            spent = json.dumps(costs, sort_keys=True)
        key = digest(
            "evaluate",
            CODE_VERSION,
            model.identity,
            # what evaluate reads: the model's features (it predicts from those alone, as
            # MemoModel's scores are keyed) and the target; not the window's time column
            frame_digest(frame, list(dict.fromkeys([*memo.features, target]))),
            json.dumps([target, list(names)]),
            spent,
        )
        found: dict[str, float] = cache.lookup(
            "evaluate", key, lambda: evaluate(memo, frame, target, names, costs)
        )
        return dict(found)

    return measure
