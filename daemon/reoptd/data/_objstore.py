"""Production rows and late labels from Parquet/CSV objects behind an fsspec URL (``s3://``,
``gs://``, ``memory://``...): ``path: s3://bucket/predictions/date=*/*.parquet``.

A path segment ``date=*`` (or ``dt=*``, ``day=*``) is a Hive-style partition holding one UTC
day: a read of ``[start, end)`` lists and reads only the partitions of the days it covers, so a
check on a year of partitions costs the listing and the objects of its own window. Objects are
re-read only when their ETag (or modification time) or size changes.

Credentials and the endpoint come from the environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``, fsspec's ``FSSPEC_*``
variables), never from the policy. Anything the store answers wrong (no bucket, no credentials,
an unreachable endpoint) is a ``DataError`` naming the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from reoptd.clock import utc
from reoptd.data._files import FileSource
from reoptd.data._labels import LabelFiles, same_kind
from reoptd.errors import DataError
from reoptd.policy import Policy

log = logging.getLogger("reoptd.data")

_PARTITION = re.compile(r"^(date|dt|day)=\*$")
MAX_LISTED_DAYS = 92  # past this, one listing of every partition beats one listing per day
_EXTRA = "pip install 'reoptd[s3]'"


def is_url(path: str) -> bool:
    """True for an fsspec URL such as ``s3://bucket/key`` (a local glob is not one)."""
    return re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", path) is not None


def open_filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path inside it; a missing driver names the
    package that brings it."""
    try:
        import fsspec
    except ImportError:
        raise DataError(f"{url}: object storage needs fsspec and s3fs: {_EXTRA}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise DataError(f"{url}: no driver for this URL ({exc}); for s3://: {_EXTRA}") from None
    except ValueError as exc:
        raise DataError(f"{url}: not a storage URL fsspec knows: {exc}") from None


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = utc(start).date(), (utc(end) - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _day_of(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class ObjectTables:
    """Tables of the objects matching a glob on one filesystem, cached by ETag/mtime and size.

    ``prepare(name, frame)`` checks and converts a freshly read table (raising ``DataError``
    naming the object); what it returns is cached. ``read`` counts the objects it fetched.
    """

    def __init__(self, url: str, fmt: str, prepare: Callable[[str, pd.DataFrame], pd.DataFrame]):
        self.url = url
        self.fmt = fmt
        self.prepare = prepare
        self.fs, self.pattern = open_filesystem(url)
        segments = self.pattern.split("/")
        self._partition = next((i for i, s in enumerate(segments) if _PARTITION.match(s)), None)
        self._cache: dict[str, tuple[tuple[str, int], pd.DataFrame]] = {}

    def load(
        self, keep: Callable[[date], bool] | None = None, days: Iterable[date] = ()
    ) -> list[tuple[str, pd.DataFrame]]:
        """The tables of the matching objects, in key order. With a partition segment, only the
        partitions of ``days`` are listed when given, else every partition ``keep`` accepts."""
        listed = self._list(keep, list(days))
        tables = []
        for path in sorted(listed):
            frame = self._load(path, listed[path])
            tables.append((self.name_of(path), frame))
        return tables

    def name_of(self, path: str) -> str:
        return str(self.fs.unstrip_protocol(path))

    def _list(self, keep: Callable[[date], bool] | None, days: list[date]) -> dict[str, Any]:
        self.fs.invalidate_cache()  # a daemon polls: every read must see new objects
        segments = self.pattern.split("/")
        i = self._partition
        if i is not None and days and len(days) <= MAX_LISTED_DAYS:
            key = segments[i].split("=")[0]
            patterns = [
                "/".join([*segments[:i], f"{key}={day.isoformat()}", *segments[i + 1 :]])
                for day in days
            ]
        else:
            patterns = [self.pattern]
        found: dict[str, Any] = {}
        for pattern in patterns:
            try:
                found.update(self.fs.glob(pattern, detail=True))
            except Exception as exc:  # botocore, aiohttp and fsspec raise many types
                raise DataError(f"{self.url}: cannot list {pattern!r}: {_why(exc)}") from None
        found = {p: info for p, info in found.items() if info.get("type", "file") == "file"}
        if i is not None:
            wanted = set(days)

            def inside(path: str) -> bool:
                day = _day_of(path.split("/")[i].split("=", 1)[-1])
                if day is None:
                    return True  # not a date: never pruned
                return (day in wanted) if days else (keep is None or keep(day))

            found = {p: info for p, info in found.items() if inside(p)}
        if not found:
            self._check_root()
        return found

    def _check_root(self) -> None:
        """Raise ``DataError`` when the fixed part of the pattern cannot be listed (no bucket,
        no credentials); an existing but empty prefix is not an error."""
        root = self.pattern.split("/")[0]
        try:
            self.fs.ls(root, detail=False)
        except Exception as exc:
            raise DataError(f"{self.url}: cannot list {root!r}: {_why(exc)}") from None

    def _load(self, path: str, info: dict[str, Any]) -> pd.DataFrame:
        version = str(info.get("ETag") or info.get("etag") or info.get("mtime") or "")
        key = (version or str(info.get("LastModified", "")), int(info.get("size") or 0))
        cached = self._cache.get(path)
        if cached and cached[0] == key:
            return cached[1]
        name = self.name_of(path)
        kind = (
            self.fmt
            if self.fmt != "auto"
            else ("csv" if path.lower().endswith(".csv") else "parquet")
        )
        try:
            with self.fs.open(path, "rb") as file:
                raw = pd.read_csv(file) if kind == "csv" else pd.read_parquet(file)
        except FileNotFoundError:
            raise DataError(f"{name}: vanished before it was read") from None
        except Exception as exc:
            raise DataError(f"{name}: cannot read as {kind}: {_why(exc)}") from None
        frame = self.prepare(name, raw)
        self._cache[path] = (key, frame)
        return frame


def _why(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
        text += (
            " (credentials come from the environment: AWS_ACCESS_KEY_ID and"
            " AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the instance's role; never the policy)"
        )
    return text


class ObjectSource(FileSource):
    """Production rows from objects matching an fsspec URL glob, pruned by day partitions."""

    def __init__(self, url: str, timestamp: str, fmt: str = "auto", required: Any = ()) -> None:
        super().__init__(url, timestamp, fmt, required)
        self.name = f"objects {url}"
        self._objects = ObjectTables(url, fmt, self._prepare)

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        frames = [frame for _, frame in self._objects.load(days=_days(start, end))]
        if not frames:
            if self._objects._partition is None:
                raise DataError(f"{self.name}: no object matches")
            return pd.DataFrame(columns=[self.timestamp, *self.required])
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        ts = frame[self.timestamp]
        window = frame[(ts >= pd.Timestamp(utc(start))) & (ts < pd.Timestamp(utc(end)))]
        return window.sort_values(self.timestamp, kind="stable").reset_index(drop=True)


class ObjectLabels(LabelFiles):
    """Late labels from objects matching an fsspec URL glob. Day partitions after the read's
    end are not read: whether a label's day is that of its arrival or of its prediction, a later
    day holds nothing a window ending at ``until`` can use."""

    def __init__(
        self, url: str, policy: Policy, fmt: str = "auto", arrived: str | None = None
    ) -> None:
        super().__init__(url, policy, fmt, arrived)
        self.name = f"label objects {url}"
        self._objects = ObjectTables(url, fmt, self._prepare)

    def labels(self, until: datetime) -> pd.DataFrame:
        last = (utc(until) - timedelta(microseconds=1)).date()
        tables = self._objects.load(keep=lambda day: day <= last)
        if not tables:
            return pd.DataFrame(columns=self.columns)
        if self.task == "classification":
            same_kind(tables, self.columns[1])
        frames = [frame for _, frame in tables]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if self.arrived is None:
            return frame
        frame = frame[frame[self.arrived] < pd.Timestamp(utc(until))]
        return frame.sort_values(self.arrived, kind="stable")
