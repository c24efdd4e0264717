"""Production rows from Parquet or CSV files matching a glob, with an event-time column."""

from __future__ import annotations

import glob
import logging
import os
import stat
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from reoptd.clock import utc
from reoptd.errors import DataError

log = logging.getLogger("reoptd.data")


class TableCache:
    """Tables read from files, re-read only when a file's modification time or size changes.

    ``prepare(path, frame)`` checks and converts a freshly read table (it raises ``DataError``
    naming the file); what it returns is cached.
    """

    def __init__(self, fmt: str, prepare: Callable[[Path, pd.DataFrame], pd.DataFrame]) -> None:
        self.fmt = fmt
        self.prepare = prepare
        self._cache: dict[str, tuple[tuple[float, int], pd.DataFrame]] = {}

    def load(self, path: Path) -> pd.DataFrame | None:
        """The file's table, or None (with a warning) when it is not a regular file (a FIFO, a
        directory, a device) or vanished since the glob listed it."""
        try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            log.warning("%s: skipped: the file vanished before it was read", path)
            self._cache.pop(str(path), None)
            return None
        except OSError as exc:
            raise DataError(f"{path}: cannot open: {exc}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # a FIFO, a directory, a device: never read
            os.close(fd)
            log.warning("%s: skipped: not a regular file (only regular files are read)", path)
            return None
        with os.fdopen(fd, "rb") as file:
            key = (info.st_mtime, info.st_size)
            cached = self._cache.get(str(path))
            if cached and cached[0] == key:
                return cached[1]
            os.set_blocking(fd, True)
            frame = self.prepare(path, read_table(path, self.fmt, file))
        self._cache[str(path)] = (key, frame)
        return frame

    def load_all(self, pattern: str) -> list[tuple[Path, pd.DataFrame]]:
        """The tables of the regular files matching ``pattern``, in file-name order; files that
        are not regular or vanish meanwhile are skipped with a warning."""
        paths = [Path(f) for f in sorted(glob.glob(pattern))]
        loaded = [(path, self.load(path)) for path in paths]
        return [(path, frame) for path, frame in loaded if frame is not None]


class FileSource:
    """Reads every file matching ``pattern`` and returns the rows inside a time window.

    Files are re-read only when their modification time or size changes, so a check every few
    minutes on an append-only directory of batch files costs one read per new file.
    """

    def __init__(
        self, pattern: str, timestamp: str, fmt: str = "auto", required: Sequence[str] = ()
    ) -> None:
        self.pattern = pattern
        self.timestamp = timestamp
        self.required = list(required)
        self.fmt = fmt
        self.name = f"files {pattern}"
        self._tables = TableCache(fmt, self._prepare)

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        frames = [frame for _, frame in self._tables.load_all(self.pattern)]
        if not frames:
            raise DataError(f"no files match {self.pattern!r} (or none is a readable regular file)")
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        ts = frame[self.timestamp]
        window = frame[(ts >= pd.Timestamp(utc(start))) & (ts < pd.Timestamp(utc(end)))]
        return window.sort_values(self.timestamp, kind="stable").reset_index(drop=True)

    def _prepare(self, path: Path | str, frame: pd.DataFrame) -> pd.DataFrame:
        # Checked per file: after concatenation a column missing from one file would only show
        # up as NaN, and the user would not learn which file is wrong.
        missing = [c for c in self.required if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: feature column {missing[0]!r} is missing", column=missing[0])
        frame[self.timestamp] = parse_timestamps(frame, self.timestamp, str(path))
        return frame


def read_table(path: Path, fmt: str = "auto", file: BinaryIO | None = None) -> pd.DataFrame:
    """One Parquet or CSV file as a DataFrame (read from ``file`` when it is open); errors name
    the file."""
    kind = fmt if fmt != "auto" else ("csv" if path.suffix.lower() == ".csv" else "parquet")
    source: Path | BinaryIO = path if file is None else file
    try:
        return pd.read_csv(source) if kind == "csv" else pd.read_parquet(source)
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise DataError(f"{path}: cannot read as {kind}: {exc}") from None


def parse_timestamps(frame: pd.DataFrame, column: str, where: str) -> pd.Series:
    """The ``column`` of ``frame`` as UTC timestamps; naive values are taken to be UTC."""
    if column not in frame.columns:
        raise DataError(f"{where}: timestamp column {column!r} is missing", column=column)
    try:
        return pd.to_datetime(frame[column], utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{where}: timestamp column {column!r} does not parse as dates: {exc}", column=column
        ) from None
