"""The local window of a SQL source: what a restart finds on disk is what was in memory, however
many reads wrote segments; a crash between a segment and its cursor, or a damaged cursor, costs a
re-fetch and never wrong rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from reoptd.data._sql_window import MAX_SEGMENTS, LocalWindow

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _rows(start: int, end: int, version: int = 0) -> pd.DataFrame:
    minutes = range(start, end)
    return pd.DataFrame(
        {
            "ts": pd.to_datetime([T0 + timedelta(minutes=m) for m in minutes], utc=True),
            "value": [m + version / 10 for m in minutes],
            "name": pd.array([f"r{m}" for m in minutes], dtype="string[pyarrow]"),
        }
    )


def _at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def _fill(window: LocalWindow, reads: int) -> None:
    """A first read of an hour, then reads of 10 new minutes re-reading the last 2 (settle)."""
    window.use("fp")
    window.put(_at(0), _at(60), _rows(0, 60))
    for i in range(reads):
        start, end = 58 + 10 * i, 70 + 10 * i
        window.put(_at(start), _at(end), _rows(start, end, version=i + 1))
        window.trim(_at(end - 60))


def test_a_restart_finds_the_window_it_left(tmp_path: Path) -> None:
    window = LocalWindow(tmp_path, "ts")
    reads = 3 * MAX_SEGMENTS
    _fill(window, reads)
    assert window.lo is not None and window.hi is not None
    expected = window.rows(window.lo, window.hi)
    assert len(expected) == 60 and expected.ts.is_monotonic_increasing
    last = 60 + 10 * reads - 1
    assert expected.value.iloc[-1] == last + reads / 10  # the last read's version of the row
    assert expected.value.iloc[-11] == last - 10 + reads / 10  # re-read (settle): replaced
    segments = list(tmp_path.glob("segment-*.parquet"))
    assert 1 <= len(segments) <= MAX_SEGMENTS + 1  # merged as it goes

    again = LocalWindow(tmp_path, "ts")
    again.use("fp")
    assert (again.lo, again.hi) == (window.lo, window.hi)
    pd.testing.assert_frame_equal(again.rows(again.lo, again.hi), expected)


def test_a_crash_before_the_cursor_and_a_damaged_cursor(tmp_path: Path) -> None:
    window = LocalWindow(tmp_path, "ts")
    _fill(window, reads=2)
    kept = window.rows(_at(0), _at(200))
    (tmp_path / "segment-orphan.parquet").write_bytes(b"written before a crash")
    again = LocalWindow(tmp_path, "ts")
    again.use("fp")
    pd.testing.assert_frame_equal(again.rows(_at(0), _at(200)), kept)
    assert not (tmp_path / "segment-orphan.parquet").exists()

    (tmp_path / "cursor.json").write_text("{not json")
    damaged = LocalWindow(tmp_path, "ts")
    damaged.use("fp")
    assert damaged.lo is None and damaged.rows(_at(0), _at(200)).empty


def test_another_source_starts_a_new_window(tmp_path: Path) -> None:
    window = LocalWindow(tmp_path, "ts")
    _fill(window, reads=1)
    other = LocalWindow(tmp_path, "ts")
    other.use("another table")
    assert other.lo is None and list(tmp_path.glob("segment-*.parquet")) == []


def test_rows_are_a_copy(tmp_path: Path) -> None:
    window = LocalWindow(None, "ts")
    window.use("fp")
    window.put(_at(0), _at(10), _rows(0, 10))
    first = window.rows(_at(0), _at(10))
    first.loc[0, "value"] = -1.0
    assert window.rows(_at(0), _at(10)).value.iloc[0] == 0.0
