"""The reference sample stored beside each version: drift reference and holdout rows, one Parquet.

A version's reference is what its checks compare production against (a sample of its training
rows). Its run's holdout rows (labelled, never trained on) ride along, marked by the ``HOLDOUT``
column: label-free estimation calibrates on them, since the training rows flatter the model.

Who calls it: the cycle packs a reference when it registers a challenger (``pack``) and
unpacks the champion's when it loads it (``split_reference``).
"""

from __future__ import annotations

import io

import pandas as pd

from reoptd.policy import Policy

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
