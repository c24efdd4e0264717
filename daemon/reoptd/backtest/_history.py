"""Loading the history a backtest replays, and the ROWS|DURATION options that cut it into steps.

Everything here runs before any work starts, so bad input fails in a second with a message that
names the file, the column or the option.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reoptd.data import (
    join_labels,
    naive_utc,
    parse_timestamps,
    read_table,
    validate_batch,
)
from reoptd.errors import DataError, ReoptdError
from reoptd.plugins import SOURCES
from reoptd.policy import Policy, parse_duration

#: without a time column, row i happens at SYNTHETIC_START + i seconds
SYNTHETIC_START = pd.Timestamp("2000-01-01", tz="UTC")
NEVER = np.datetime64("2262-01-01", "ns")


class BacktestError(ReoptdError):
    """The backtest cannot start: bad data file, time column or options."""


@dataclass(frozen=True)
class Span:
    """A number of rows or a duration, as given to --warmup, --step and --label-delay."""

    rows: int | None = None
    duration: timedelta | None = None

    def __str__(self) -> str:
        return f"{self.rows} rows" if self.rows is not None else str(self.duration)


def parse_span(text: str | int, option: str) -> Span:
    """``"500"`` (rows) or ``"6h"`` (a duration)."""
    value = str(text).strip()
    if value.isdigit():
        return Span(rows=int(value))
    try:
        return Span(duration=parse_duration(value))
    except ValueError:
        raise BacktestError(
            f"{option}: expected a number of rows (500) or a duration (6h, 30m), got {value!r}"
        ) from None


@dataclass
class History:
    frame: pd.DataFrame  # sorted by time, the policy's timestamp column tz-aware UTC
    ts: np.ndarray  # the same timestamps as naive-UTC datetime64[ns]
    policy: Policy  # with `timestamp` set to the column actually used
    synthetic_time: bool
    label_at: np.ndarray | None = None  # when each row's label arrived (label files' `arrived`)
    labels_from: str | None = None  # the label files joined, when the target came from them


def load_history(path: Path, policy: Policy, time_column: str | None = None) -> History:
    if not path.exists():
        raise BacktestError(f"{path}: no such file")
    frame = read_table(path)
    if frame.empty:
        raise BacktestError(f"{path}: holds no rows")
    label_at: np.ndarray | None = None
    labels_from: str | None = None
    if policy.target not in frame.columns and policy.data.labels is not None:
        frame, label_at = _join_label_files(frame, policy, path)
        labels_from = policy.data.labels.path or policy.data.labels.subject
    missing = [c for c in [*policy.features.all, policy.target] if c not in frame.columns]
    if missing:
        what = "target" if missing[0] == policy.target else "feature"
        raise BacktestError(
            f"{path}: lacks the policy's {what} column {missing[0]!r}"
            + (f" (also: {', '.join(missing[1:])})" if len(missing) > 1 else "")
        )
    synthetic = False
    column = time_column
    if column is None and policy.timestamp in frame.columns:
        column = policy.timestamp
    if column is None:
        column, synthetic = policy.timestamp, True
        frame[column] = SYNTHETIC_START + pd.to_timedelta(np.arange(len(frame)), unit="s")
    else:
        if column not in frame.columns:
            raise BacktestError(f"{path}: no time column {column!r} (--time-column)")
        frame[column] = parse_timestamps(frame, column, str(path))
        if frame[column].isna().any():
            bad = int(frame[column].isna().sum())
            raise BacktestError(f"{path}: time column {column!r} has {bad} empty value(s)")
    policy = policy.model_copy(update={"timestamp": column})
    frame = validate_batch(frame, policy, str(path))
    order = frame[column].argsort(kind="stable").to_numpy()
    frame = frame.iloc[order].reset_index(drop=True)
    if label_at is not None:
        label_at = label_at[order]
    return History(frame, naive_utc(frame[column]), policy, synthetic, label_at, labels_from)


def _join_label_files(
    frame: pd.DataFrame, policy: Policy, path: Path
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The production rows of ``path`` with their targets from the policy's label files (joined
    on ``id``, as the daemon does), and when each label arrived (``NEVER`` for a row without a
    label; None when the files have no ``arrived`` column: every label is known at its row)."""
    assert policy.data is not None and policy.data.labels is not None
    spec = policy.data.labels
    if spec.path is None:  # kind: sql labels live in a database, not beside the --data file
        raise BacktestError(
            f"{path}: no target column {policy.target!r}, and data.labels is kind {spec.kind}:"
            " a backtest joins label files only; export the labels or give --data a target"
        )
    try:
        open_labels: Any = SOURCES.get(spec.kind).open_labels  # local, s3:// or a stream
        feed = open_labels(policy)
        labels = feed.labels(datetime(2262, 1, 1, tzinfo=UTC))  # every label, ever
        if labels.empty:
            raise BacktestError(
                f"{path}: no target column {policy.target!r}, and data.labels"
                f" {spec.path or spec.subject!r} holds no label"
            )
        joined = join_labels(frame, labels, policy).frame
    except DataError as exc:
        where = spec.path or spec.subject
        raise BacktestError(f"{path}: joining data.labels {where!r}: {exc}") from None
    if spec.arrived is None:
        return joined, None
    arrived = labels[labels[policy.target].notna()].drop_duplicates(policy.id, keep="last")
    at = joined[policy.id].map(arrived.set_index(policy.id)[spec.arrived])
    times = pd.to_datetime(at, utc=True).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return joined, np.where(np.isnat(times), NEVER, times)


@dataclass
class Steps:
    starts: list[pd.Timestamp]  # the time each step starts (its rows are at or after it)
    bounds: list[int]  # row index where each step starts, plus the end
    end: pd.Timestamp


def cut_steps(history: History, warmup: Span, step: Span) -> Steps:
    ts, n = history.ts, len(history.ts)
    if warmup.rows is not None:
        first = warmup.rows
        if first >= n:
            raise BacktestError(f"--warmup {warmup} leaves no rows to replay (the file has {n})")
        start = ts[first]
    else:
        assert warmup.duration is not None
        start = ts[0] + np.timedelta64(int(warmup.duration.total_seconds() * 1e9), "ns")
        first = int(np.searchsorted(ts, start, side="left"))
        if first >= n:
            span = pd.Timedelta(ts[-1] - ts[0])
            raise BacktestError(f"--warmup {warmup} is longer than the data, which spans {span}")
    if (step.rows is not None and step.rows < 1) or (
        step.duration is not None and step.duration.total_seconds() <= 0
    ):
        raise BacktestError("--step must be at least one row or a positive duration")
    bounds, starts = [first], [start]
    if step.rows is not None:
        for b in range(first + step.rows, n, step.rows):
            bounds.append(b)
            starts.append(ts[b])
    else:
        assert step.duration is not None
        delta = np.timedelta64(int(step.duration.total_seconds() * 1e9), "ns")
        t = start + delta
        while t <= ts[-1]:
            bounds.append(int(np.searchsorted(ts, t, side="left")))
            starts.append(t)
            t = t + delta
    bounds.append(n)
    end = ts[-1] + np.timedelta64(1, "us")
    return Steps([_aware(s) for s in starts], bounds, _aware(end))


def label_times(history: History, delay: Span) -> np.ndarray:
    """When each row's label becomes visible to the daemon: after ``delay``, and never before
    it arrived when the labels came from files with an ``arrived`` column."""
    at = _delayed(history.ts, delay)
    if history.label_at is not None:
        at = np.maximum(at, history.label_at)
    return at


def _delayed(ts: np.ndarray, delay: Span) -> np.ndarray:
    if delay.duration is not None:
        return ts + np.timedelta64(int(delay.duration.total_seconds() * 1e9), "ns")
    rows = delay.rows or 0
    at = np.full(len(ts), NEVER, dtype="datetime64[ns]")
    if rows < len(ts):
        at[: len(ts) - rows] = ts[rows:]
    return at


def _aware(value: np.datetime64) -> pd.Timestamp:
    """UTC, floored to the microsecond: the clock the daemon's code runs on is a ``datetime``,
    and a Timestamp with nanoseconds warns "Discarding nonzero nanoseconds" when converted."""
    return pd.Timestamp(value).tz_localize("UTC").floor("us")
