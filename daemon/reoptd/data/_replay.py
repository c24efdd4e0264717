"""A recorded history replayed as a production source: what the backtester feeds the loop."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import numpy as np
import pandas as pd

from reoptd.clock import utc
from reoptd.data._validate import validate_batch, validation_key
from reoptd.policy import Policy


class ReplaySource:
    """Rows of ``frame`` (sorted by ``timestamp``) seen from a moment in the replay.

    ``label_at`` says when each row's label becomes visible; ``read(start, end)`` hides the labels
    of rows whose ``label_at`` is not before ``end`` (the loop always reads up to "now"), exactly as
    the demo stream and a real label feed behave.

    Given ``policy``, the frame is validated for it once (``validate_batch``; raises
    ``DataError``) and ``validated`` says so, so the loop's ``validate_read`` of each window
    read from it is free (a backtest reads every window several times).
    """

    name = "replay"

    def __init__(
        self,
        frame: pd.DataFrame,
        timestamp: str,
        target: str,
        label_at: np.ndarray,
        policy: Policy | None = None,
    ) -> None:
        #: the ``validation_key`` of the policy every row was validated for, if any
        self.validated: str | None = None
        if policy is not None:
            frame = validate_batch(frame, policy, self.name)
            self.validated = validation_key(policy)
        self.frame = frame.reset_index(drop=True)
        self.timestamp = timestamp
        self.target = target
        self._ts = naive_utc(self.frame[timestamp])
        self._label_at = label_at  # naive UTC datetime64; "never" is datetime64 max, not NaT

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        lo, hi = self._bounds(start, end)
        window = self.frame.iloc[lo:hi].reset_index(drop=True)  # a copy: the caller's own
        hidden = self._label_at[lo:hi] >= _naive(end)
        if hidden.any():
            target = window[self.target]
            dtype = target.dtype
            if isinstance(dtype, np.dtype) and dtype.kind in "iuf":  # as ``.loc`` does, at once
                as_float = str(dtype) if dtype.kind == "f" else "float64"
                values = target.to_numpy(dtype=as_float, copy=True)
                values[hidden] = np.nan
                window[self.target] = values
            else:
                window.loc[hidden, self.target] = np.nan
        return window

    def _bounds(self, start: datetime, end: datetime) -> tuple[int, int]:
        ts = self._ts
        lo = int(np.searchsorted(ts, _naive(start), side="left"))
        hi = int(np.searchsorted(ts, _naive(end), side="left"))
        return lo, hi


def naive_utc(values: pd.Series) -> np.ndarray:
    """A tz-aware timestamp column as naive-UTC ``datetime64[ns]`` (fast to search)."""
    instants = cast(pd.arrays.DatetimeArray, values.array).tz_convert(None)  # UTC, zone dropped
    naive: np.ndarray = instants.to_numpy().astype("datetime64[ns]", copy=False)
    return naive


def _naive(when: datetime) -> np.datetime64:
    return np.datetime64(pd.Timestamp(utc(when)).tz_localize(None))
