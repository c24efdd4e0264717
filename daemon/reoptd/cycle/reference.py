"""The reference sample stored beside each version: drift reference and holdout rows, one Parquet.

A version's reference is what its checks compare production against (a sample of its training
rows). Its run's holdout rows (labelled, never trained on) ride along, marked by the ``HOLDOUT``
column: label-free estimation calibrates on them, since the training rows flatter the model.

Who calls it: promotion packs a reference when it registers a challenger (``pack``);
``Versions``, the loop's cache of loaded models, unpacks the champion's when it loads it.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import pandas as pd

from reoptd.errors import ArtifactError
from reoptd.models import Model, load_model
from reoptd.monitor import Champion
from reoptd.policy import Policy
from reoptd.store import Store, VersionRecord

log = logging.getLogger("reoptd.loop")

#: the column that marks the holdout rows stored beside a version's drift reference
HOLDOUT = "__reoptd_holdout__"


def pack(policy: Policy, train: pd.DataFrame, holdout: pd.DataFrame) -> bytes:
    """The Parquet bytes of a version's reference: its monitored columns and target, training
    rows and holdout rows each sampled to ``monitor.reference_rows`` at most."""
    kept = [c for c in (*policy.features.monitored, policy.target) if c in train.columns]
    limit = policy.monitor.reference_rows
    reference = _sample(train[kept], limit)
    calibration = _sample(holdout[kept], limit)
    stored = pd.concat(
        [reference.assign(**{HOLDOUT: False}), calibration.assign(**{HOLDOUT: True})],
        ignore_index=True,
    )
    buffer = io.BytesIO()
    stored.reset_index(drop=True).to_parquet(buffer, index=False)
    return buffer.getvalue()


def unpack(data: bytes) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Stored reference bytes as (drift reference, calibration rows or None)."""
    return split_reference(pd.read_parquet(io.BytesIO(data)))


def split_reference(stored: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A stored reference as (drift reference: training rows, calibration: holdout rows).
    References written before holdout rows were kept have no calibration part."""
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
            reference, calibration = unpack(self.store.load_reference(row))
            self._champion = Champion(row.version, model, reference, row.train_end, calibration)
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
