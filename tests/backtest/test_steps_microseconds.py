"""Step times of a history whose timestamps carry nanoseconds convert to the daemon's clock
(``datetime``) without pandas' "Discarding nonzero nanoseconds" warning."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from reoptd.backtest import Span
from reoptd.backtest._history import History, cut_steps
from reoptd.policy import load_policy
from reoptd.settings import DEMO_POLICY


def test_step_starts_convert_to_datetime_without_warnings() -> None:
    ts = (np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(50) * 1_000_000_123).astype(
        "datetime64[ns]"
    )
    frame = pd.DataFrame({"ts": pd.to_datetime(ts, utc=True)})
    history = History(frame, ts, load_policy(DEMO_POLICY), synthetic_time=False)
    steps = cut_steps(history, Span(rows=5), Span(rows=7))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converted = [s.to_pydatetime() for s in [*steps.starts, steps.end]]
    assert all(c.tzinfo is not None for c in converted)
    for start, first_row in zip(steps.starts, steps.bounds, strict=False):  # rows at or after it
        assert start <= pd.Timestamp(ts[first_row], tz="UTC")
