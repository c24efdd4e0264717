"""The reference sample stored beside each version: drift reference and holdout rows, one Parquet.

A version's reference is what its checks compare production against (a sample of its training
rows). Its run's holdout rows (labelled, never trained on) ride along, marked by the ``HOLDOUT``
column: label-free estimation calibrates on them, since the training rows flatter the model.

Who calls it: promotion packs a reference when it registers a challenger (``pack``);
``Versions``, the loop's cache of loaded models, unpacks the champion's when it loads it.

``monitor.reference`` may replace that reference for drift: ``drift_reference`` gives the loop
the champion with the previous window's rows, or a fixed period's, as its reference instead.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reoptd.clock import utc
from reoptd.errors import ArtifactError, DataError
from reoptd.models import Model, load_model
from reoptd.monitor import Champion, ReferenceStats
from reoptd.policy import Policy
from reoptd.store import Store, VersionRecord

log = logging.getLogger("reoptd.loop")

#: the column that marks the holdout rows stored beside a version's drift reference
HOLDOUT = "__reoptd_holdout__"
#: the prefix of the columns holding a numerical column's sorted reference values
SORTED = "__reoptd_sorted__:"
#: the Parquet metadata key of the reference's drift statistics (``ReferenceStats``)
STATS_KEY = b"reoptd.drift_stats"


def pack(policy: Policy, train: pd.DataFrame, holdout: pd.DataFrame) -> bytes:
    """The Parquet bytes of a version's reference: its monitored columns and target, training
    rows and holdout rows each sampled to ``monitor.reference_rows`` at most, and the drift
    statistics of the training rows (``ReferenceStats``), computed here once per version: the
    sorted values of each numerical column as a ``SORTED``-prefixed column (padded with NaN),
    the rest in the file's metadata (``STATS_KEY``). The file's sha256 covers them."""
    kept = [c for c in (*policy.features.monitored, policy.target) if c in train.columns]
    limit = policy.monitor.reference_rows
    reference = _sample(train[kept], limit)
    calibration = _sample(holdout[kept], limit)
    stored = pd.concat(
        [reference.assign(**{HOLDOUT: False}), calibration.assign(**{HOLDOUT: True})],
        ignore_index=True,
    )
    stats, ordered = ReferenceStats.of(policy, reference.reset_index(drop=True))
    padded = {}
    for column, values in ordered.items():
        column_values = np.full(len(stored), np.nan)
        column_values[: len(values)] = values
        padded[SORTED + column] = column_values
    stored = pd.concat([stored, pd.DataFrame(padded, index=stored.index)], axis=1)
    table = pa.Table.from_pandas(stored.reset_index(drop=True), preserve_index=False)
    metadata = {**(table.schema.metadata or {}), STATS_KEY: json.dumps(stats.to_dict())}
    buffer = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), buffer)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Stored reference bytes as (drift reference, calibration rows or None)."""
    names = pq.read_schema(io.BytesIO(data)).names
    rows = [n for n in names if not n.startswith(SORTED)]
    return split_reference(pd.read_parquet(io.BytesIO(data), columns=rows))


def unpack_stats(data: bytes) -> ReferenceStats | None:
    """The drift statistics stored in reference bytes (None: written before they were); the
    sorted values are read from the bytes when a check first needs them, in one pass over the
    file (a read per column would parse its footer once per column)."""
    schema = pq.read_schema(io.BytesIO(data))
    stored = (schema.metadata or {}).get(STATS_KEY)
    if stored is None:
        return None
    read: dict[str, np.ndarray] = {}

    def sorted_values(column: str) -> np.ndarray:
        if column not in read:  # the first need (or a detector built again)
            names = [n for n in schema.names if n.startswith(SORTED)]
            table = pq.read_table(io.BytesIO(data), columns=names)
            for name, values in zip(names, table.columns, strict=True):
                read[name[len(SORTED) :]] = values.to_numpy()
        return read.pop(column)  # the detector keeps it from now on

    return ReferenceStats.from_dict(json.loads(stored), sorted_values)


def split_reference(stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A stored reference as (drift reference: training rows, calibration: holdout rows).
    References written before holdout rows were kept have no calibration part."""
    stored = stored.drop(columns=[c for c in stored.columns if str(c).startswith(SORTED)])
    if HOLDOUT not in stored.columns:
        return stored, None
    mark = stored[HOLDOUT].astype(bool)
    reference = stored[~mark].drop(columns=HOLDOUT).reset_index(drop=True)
    return reference, stored[mark].drop(columns=HOLDOUT).reset_index(drop=True)


def _sample(rows: pd.DataFrame, limit: int) -> pd.DataFrame:
    return rows.sample(limit, random_state=0) if len(rows) > limit else rows


class Versions:
    """A model's versions as loaded models: the champion with its reference (loaded and
    sha256-verified once per version), and one other version (a shadow or a predecessor)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name
        self._champion: Champion | None = None
        self._other: dict[int, Model] = {}

    def forget(self) -> None:
        """Drop the loaded champion (its drift detector depends on the policy)."""
        self._champion = None

    def champion(self) -> Champion:
        row = self.store.champion(self.name)
        if row is None:
            raise ArtifactError(f"model {self.name!r} has no champion")
        if self._champion is None or self._champion.version != row.version:
            started = time.perf_counter()
            model = load_model(self.store.load_artifact(row))
            data = self.store.load_reference(row)
            reference, calibration = unpack(data)
            self._champion = Champion(
                row.version, model, reference, row.train_end, calibration, unpack_stats(data)
            )
            log.debug(
                "%s: loaded v%d in %.2fs", self.name, row.version, time.perf_counter() - started
            )
        return self._champion

    def load(self, version: VersionRecord) -> Model:
        cached = self._other.get(version.version)
        if cached is None:
            cached = load_model(self.store.load_artifact(version))
            self._other = {version.version: cached}
        return cached

    def model_of(self, champion: Champion) -> Callable[[int], Model]:
        """The model that was champion at a past check, by version (for backfill)."""

        def model_of(version: int) -> Model:
            if version == champion.version:
                return champion.model
            return self.load(self.store.version(self.name, version))

        return model_of


class DriftReference:
    """The champion as its checks see it under ``monitor.reference``: with its training sample
    (``training``), with the rows of the window before the checked one (``previous_window``), or
    with the production rows of a fixed period (``fixed``; read once per champion version)."""

    def __init__(self) -> None:
        self._fixed: tuple[int, Champion] | None = None

    def forget(self) -> None:
        self._fixed = None

    def __call__(self, policy: Policy, source, champion: Champion, now: datetime) -> Champion:
        choice = policy.monitor.reference
        if choice == "training":
            return champion
        if choice == "previous_window":
            window = policy.monitor.window
            return self._swap(policy, source, champion, now - 2 * window, now - window)
        if self._fixed is None or self._fixed[0] != champion.version:
            span = choice.fixed
            swapped = self._swap(policy, source, champion, utc(span.start), utc(span.end))
            self._fixed = (champion.version, swapped)
        return self._fixed[1]

    @staticmethod
    def _swap(policy: Policy, source, champion: Champion, start: datetime, end: datetime):
        """``champion`` with the rows of ``[start, end)`` as reference; its own reference when
        they are fewer than ``monitor.min_rows`` (the first window of a replay, a gap)."""
        try:
            rows = source.read(start, end)
        except DataError as exc:
            log.warning("%s: drift reference %s..%s unreadable: %s", policy.model, start, end, exc)
            return champion
        if len(rows) < policy.monitor.min_rows:
            log.info(
                "%s: %d rows between %s and %s, under monitor.min_rows: drift against the"
                " training reference",
                policy.model,
                len(rows),
                f"{start:%Y-%m-%d %H:%M}",
                f"{end:%Y-%m-%d %H:%M}",
            )
            return champion
        kept = [c for c in (*policy.features.monitored, policy.target) if c in rows.columns]
        reference = _sample(rows[kept].reset_index(drop=True), policy.monitor.reference_rows)
        return dataclasses.replace(
            champion,
            reference=reference.reset_index(drop=True),
            stats=None,
            _detector=None,
            _outputs=None,
            _quality=None,
            _target=False,
        )
