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

from reoptd.clock import utc

log = logging.getLogger("reoptd.data")

#: segments before they are merged into one
MAX_SEGMENTS = 8
_VERSION = 1


class LocalWindow:
    """Rows with ``lo <= column < hi``, sorted by ``column`` (UTC timestamps)."""

    def __init__(self, directory: Path | None, column: str) -> None:
        self.directory = directory
        self.column = column
        self.fingerprint = ""
        self.lo: datetime | None = None
        self.hi: datetime | None = None
        self.frame: pd.DataFrame | None = None
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
        self.frame = None
        old, self._segments = self._segments, []
        self._save()
        self._remove(old)

    @property
    def empty(self) -> bool:
        return self.frame is None or self.lo is None or self.hi is None

    # -- changes --------------------------------------------------------------------------------

    def put(self, start: datetime, end: datetime, rows: pd.DataFrame) -> None:
        """Make ``rows`` the window's rows in ``[start, end)``; the range must touch or overlap
        the window's (or the window is empty)."""
        rows = rows.sort_values(self.column, kind="stable").reset_index(drop=True)
        if self.frame is None or self.lo is None or self.hi is None:
            self.frame, self.lo, self.hi = rows, start, end
        else:
            i, j = self._bounds(start, end)
            parts = [p for p in (self.frame.iloc[:i], rows, self.frame.iloc[j:]) if len(p)]
            if parts:
                self.frame = pd.concat(parts, ignore_index=True)
            else:
                self.frame = self.frame.iloc[:0]
            self.lo, self.hi = min(self.lo, start), max(self.hi, end)
        if self.directory is None:
            return
        if len(self._segments) >= MAX_SEGMENTS:
            old, self._segments = self._segments, []
            self._segments.append(self._write(self.lo, self.hi, self.frame))
            self._save()
            self._remove(old)
        else:
            self._segments.append(self._write(start, end, rows))
            self._save()

    def trim(self, keep_from: datetime) -> None:
        """Forget the rows before ``keep_from``."""
        if self.frame is None or self.lo is None or self.hi is None or keep_from <= self.lo:
            return
        keep_from = min(keep_from, self.hi)
        i, _ = self._bounds(keep_from, keep_from)
        self.frame = self.frame.iloc[i:].reset_index(drop=True)
        self.lo = keep_from
        gone = [s for s in self._segments if datetime.fromisoformat(s["to"]) <= keep_from]
        self._segments = [s for s in self._segments if s not in gone]
        self._save()
        self._remove(gone)

    def rows(self, start: datetime, end: datetime) -> pd.DataFrame:
        """A copy of the rows in ``[start, end)`` (the caller may change it)."""
        if self.frame is None:
            return pd.DataFrame()
        i, j = self._bounds(start, end)
        return self.frame.iloc[i:j].reset_index(drop=True).copy()

    def _bounds(self, start: datetime, end: datetime) -> tuple[int, int]:
        assert self.frame is not None
        ts = self.frame[self.column]
        i = int(ts.searchsorted(pd.Timestamp(utc(start)), side="left"))
        j = int(ts.searchsorted(pd.Timestamp(utc(end)), side="left"))
        return i, j

    # -- disk -----------------------------------------------------------------------------------

    def _write(self, start: datetime, end: datetime, rows: pd.DataFrame) -> dict[str, str]:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"segment-{uuid.uuid4().hex}.parquet"
        rows.to_parquet(self.directory / name, index=False)
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
            return
        if cursor.get("version") != _VERSION or cursor.get("fingerprint") != self.fingerprint:
            return
        try:
            for segment in cursor["segments"]:
                rows = pd.read_parquet(self.directory / segment["file"])
                start = datetime.fromisoformat(segment["from"])
                end = datetime.fromisoformat(segment["to"])
                self._segments.append(segment)
                self._put_loaded(start, end, rows)
            lo, hi = cursor["lo"], cursor["hi"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: a segment is unreadable, fetching the window again: %s", path, exc)
            self.frame, self.lo, self.hi, self._segments = None, None, None, []
            return
        if self.frame is None or lo is None or hi is None:
            self.frame, self.lo, self.hi = None, None, None
            return
        self.lo, self.hi = datetime.fromisoformat(lo), datetime.fromisoformat(hi)
        i, _ = self._bounds(self.lo, self.lo)
        self.frame = self.frame.iloc[i:].reset_index(drop=True)
        known = {s["file"] for s in self._segments}
        for orphan in self.directory.glob("segment-*.parquet"):  # a crash before its cursor
            if orphan.name not in known:
                orphan.unlink(missing_ok=True)

    def _put_loaded(self, start: datetime, end: datetime, rows: pd.DataFrame) -> None:
        directory, self.directory = self.directory, None  # replay: write nothing
        try:
            self.put(start, end, rows)
        finally:
            self.directory = directory
