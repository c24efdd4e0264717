"""The local copy of the rows a SQL source read: a time range ``[lo, hi)`` of rows, in memory and
under a directory (Parquet segments plus a small JSON cursor), so a read fetches from the database
only what it does not hold yet, and a restarted daemon does not fetch the whole window again.

Who calls it: ``_sql.Incremental``. Each fetched range becomes one segment file; the cursor names
the segments in the order they were written, and a later segment replaces the rows of an earlier
one inside its range (a re-read of the newest minutes replaces them). The cursor is replaced
atomically after its segment is on disk, so a crash leaves the previous cursor in force.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reoptd.clock import utc

log = logging.getLogger("reoptd.data")

#: segments on disk before all but the first are merged into one
MAX_SEGMENTS = 8
#: frames in memory before they are merged into one
MAX_CHUNKS = 16
_VERSION = 1


class LocalWindow:
    """Rows with ``lo <= column < hi`` (UTC timestamps), in memory as a few frames sorted by
    ``column`` whose ranges follow each other: adding the newest rows appends one (no copy of
    the rows held), and a read copies only the rows it returns."""

    def __init__(self, directory: Path | None, column: str) -> None:
        self.directory = directory
        self.column = column
        self.fingerprint = ""
        self.lo: datetime | None = None
        self.hi: datetime | None = None
        self.columns: list[str] | None = None  # of the rows last put
        self._chunks: list[pd.DataFrame] = []
        self._segments: list[dict[str, str]] = []
        self._loaded = False

    # -- state ----------------------------------------------------------------------------------

    def use(self, fingerprint: str) -> None:
        """Load the stored window the first time; drop it when it was read from another source
        (a policy edit that points elsewhere)."""
        if not self._loaded:
            self._loaded = True
            self.fingerprint = fingerprint
            self._load()
        if fingerprint != self.fingerprint:
            self.fingerprint = fingerprint
            self.clear()

    def clear(self) -> None:
        self.lo = self.hi = None
        self.columns = None
        self._chunks = []
        old, self._segments = self._segments, []
        self._save()
        self._remove(old)

    # -- changes --------------------------------------------------------------------------------

    def put(
        self, start: datetime, end: datetime, rows: pd.DataFrame, table: pa.Table | None = None
    ) -> None:
        """Make ``rows`` the window's rows in ``[start, end)``; the range must touch or overlap
        the window's (or the window is empty). ``table``: the same rows as fetched (Arrow),
        written as the segment without a conversion."""
        if not rows[self.column].is_monotonic_increasing:
            rows = rows.sort_values(self.column, kind="stable").reset_index(drop=True)
        before, after = [], []
        for chunk in self._chunks:
            i, j = self._bounds(chunk, start, end)
            if i:
                before.append(chunk.iloc[:i])
            if j < len(chunk):
                after.append(chunk.iloc[j:])
        self._chunks = [c for c in (*before, rows, *after) if len(c)]
        if len(self._chunks) > MAX_CHUNKS:
            self._chunks = [pd.concat(self._chunks, ignore_index=True)]
        self.columns = list(rows.columns)
        self.lo = start if self.lo is None else min(self.lo, start)
        self.hi = end if self.hi is None else max(self.hi, end)
        if self.directory is None:
            return
        self._segments.append(self._write(start, end, rows if table is None else table))
        old: list[dict[str, str]] = []
        if len(self._segments) > MAX_SEGMENTS:  # merge all but the first (the big one)
            old, self._segments = self._segments[1:], self._segments[:1]
            since = min(datetime.fromisoformat(s["from"]) for s in old)
            self._segments.append(self._write(since, self.hi, self.rows(since, self.hi)))
        self._save()
        self._remove(old)

    def trim(self, keep_from: datetime) -> None:
        """Forget the rows before ``keep_from``."""
        if self.lo is None or self.hi is None or keep_from <= self.lo:
            return
        keep_from = min(keep_from, self.hi)
        kept = []
        for chunk in self._chunks:
            i, _ = self._bounds(chunk, keep_from, keep_from)
            kept.append(chunk.iloc[i:])
        self._chunks = [c for c in kept if len(c)]
        self.lo = keep_from
        gone = [s for s in self._segments if datetime.fromisoformat(s["to"]) <= keep_from]
        self._segments = [s for s in self._segments if s not in gone]
        self._save()  # the new `lo` too: a restart must not bring the forgotten rows back
        self._remove(gone)

    def rows(self, start: datetime, end: datetime) -> pd.DataFrame:
        """A copy of the rows in ``[start, end)`` (the caller may change it)."""
        parts = []
        for chunk in self._chunks:
            i, j = self._bounds(chunk, start, end)
            if j > i:
                parts.append(chunk.iloc[i:j])
        if not parts:
            if self._chunks:
                return self._chunks[0].iloc[:0].copy()
            return pd.DataFrame(columns=self.columns or [self.column])
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].copy()
        frame.index = pd.RangeIndex(len(frame))
        return frame

    def _bounds(self, chunk: pd.DataFrame, start: datetime, end: datetime) -> tuple[int, int]:
        ts = chunk[self.column]
        i = int(ts.searchsorted(pd.Timestamp(utc(start)), side="left"))
        j = int(ts.searchsorted(pd.Timestamp(utc(end)), side="left"))
        return i, j

    # -- disk -----------------------------------------------------------------------------------

    def _write(
        self, start: datetime, end: datetime, rows: pd.DataFrame | pa.Table
    ) -> dict[str, str]:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"segment-{uuid.uuid4().hex}.parquet"
        if isinstance(rows, pd.DataFrame):
            rows = pa.Table.from_pandas(rows, preserve_index=False)
        # lz4 without dictionaries: written on every incremental read, so fast over small
        pq.write_table(rows, self.directory / name, compression="lz4", use_dictionary=False)
        return {"file": name, "from": utc(start).isoformat(), "to": utc(end).isoformat()}

    def _save(self) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        cursor: dict[str, Any] = {
            "version": _VERSION,
            "fingerprint": self.fingerprint,
            "lo": None if self.lo is None else utc(self.lo).isoformat(),
            "hi": None if self.hi is None else utc(self.hi).isoformat(),
            "segments": self._segments,
        }
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".cursor-", suffix=".json")
        with os.fdopen(fd, "w") as file:
            json.dump(cursor, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, self.directory / "cursor.json")

    def _remove(self, segments: list[dict[str, str]]) -> None:
        if self.directory is None:
            return
        for segment in segments:
            with contextlib.suppress(FileNotFoundError):
                (self.directory / segment["file"]).unlink()

    def _load(self) -> None:
        """The stored window, if it is of this source; a missing or unreadable one is dropped
        (the rows are fetched again)."""
        if self.directory is None:
            return
        path = self.directory / "cursor.json"
        try:
            cursor = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable, fetching the window again: %s", path, exc)
            self._remove_unlisted()
            return
        if cursor.get("version") != _VERSION or cursor.get("fingerprint") != self.fingerprint:
            self._remove_unlisted()  # rows of another source (or format): never mixed in
            return
        try:
            for segment in cursor["segments"]:
                rows = arrow_frame(pq.read_table(self.directory / segment["file"]))
                start = datetime.fromisoformat(segment["from"])
                end = datetime.fromisoformat(segment["to"])
                self._segments.append(segment)
                self._put_loaded(start, end, rows)
            lo, hi = cursor["lo"], cursor["hi"]
        except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
            log.warning("%s: a segment is unreadable, fetching the window again: %s", path, exc)
            self._chunks, self.lo, self.hi, self._segments = [], None, None, []
            self._remove_unlisted()
            return
        if not self._segments or lo is None or hi is None:
            self._chunks, self.lo, self.hi = [], None, None
            return
        self.hi = datetime.fromisoformat(hi)
        self.trim(datetime.fromisoformat(lo))
        self._remove_unlisted()  # a segment a crash left before its cursor was written

    def _remove_unlisted(self) -> None:
        """Delete the segment files the cursor in force does not list."""
        assert self.directory is not None
        known = {s["file"] for s in self._segments}
        for orphan in self.directory.glob("segment-*.parquet"):
            if orphan.name not in known:
                orphan.unlink(missing_ok=True)

    def _put_loaded(self, start: datetime, end: datetime, rows: pd.DataFrame) -> None:
        directory, self.directory = self.directory, None  # replay: write nothing
        try:
            self.put(start, end, rows)
        finally:
            self.directory = directory


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """``table`` as pandas, its strings backed by Arrow (no Python object per value, so copying
    and appending a window of a million rows stays cheap)."""
    return table.to_pandas(types_mapper=_ARROW_STRINGS.get)


_ARROW_STRINGS = {
    pa.string(): pd.StringDtype("pyarrow"),
    pa.large_string(): pd.StringDtype("pyarrow"),
}
