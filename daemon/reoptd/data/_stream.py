"""Production rows and late labels consumed from a NATS JetStream subject (``kind: stream``).

Each read first drains the subject's new messages (JSON objects, one row each) through a
durable pull consumer, writes them as one Parquet segment under
``REOPTD_HOME/streams/<model>/<role>/`` (written to a temporary file, fsynced, renamed, the
directory fsynced), and only then acks them: the consumer's position moves only past rows that
are on disk. A crash between the write and the ack makes the broker deliver those messages
again; they are dropped by their stream sequence number, which every segment keeps in ``_seq``.
A crash before the write loses nothing either: the broker redelivers the messages once the
consumer's ``ack_wait`` has passed, and the next read waits for them.

The window is then read from the local segments, like any other source. A broker that cannot
be reached, a stream that does not exist, or messages that are not JSON objects are a
``DataError`` naming the subject (messages that cannot be rows are acked and named, so one bad
message does not block the subject).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from reoptd.clock import utc
from reoptd.data._files import parse_timestamps
from reoptd.errors import DataError
from reoptd.policy import Policy

log = logging.getLogger("reoptd.data")

DEFAULT_URL = "nats://127.0.0.1:4222"
API_TIMEOUT = 15  # seconds for one JetStream API call or flush: a busy broker is not a gone one
SEQ = "_seq"  # the message's stream sequence number: the dedupe key of every row
_EXTRA = "pip install 'reoptd[nats]'"


def server_url(url_env: str | None, where: str) -> str:
    """The broker URL from the environment variable the policy names (the default broker on
    loopback when it names none); the URL, which may carry credentials, is never in a policy."""
    if url_env is None:
        return DEFAULT_URL
    url = os.environ.get(url_env)
    if not url:
        raise DataError(f"{where}: environment variable {url_env} (url_env) is not set")
    return url


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StreamLog:
    """The messages of one subject, kept as Parquet segments in ``directory``.

    ``pull()`` consumes what is new and returns how many rows it added; ``frame()`` is every row
    kept, in stream order, with the ``_seq`` column. ``required`` columns must be in every
    message; ``timestamps`` are parsed as UTC when the log is read.
    """

    def __init__(
        self,
        *,
        subject: str,
        directory: Path,
        durable: str,
        stream: str | None = None,
        url_env: str | None = None,
        ack_wait: float = 30.0,
        keep: timedelta | None = None,
        batch: int = 1000,
        required: Sequence[str] = (),
        timestamps: Sequence[str] = (),
    ) -> None:
        self.subject = subject
        self.directory = directory
        self.durable = _safe(durable)
        self.stream = stream
        self.url_env = url_env
        self.ack_wait = ack_wait
        self.keep = keep
        self.batch = batch
        self.required = list(required)
        self.timestamps = list(timestamps)
        self.name = f"stream {subject}"
        self._segments: dict[str, pd.DataFrame] = {}
        self._seqs: set[int] = set()
        self._frame: pd.DataFrame | None = None
        self._load()

    # -- the local segments --------------------------------------------------------------

    def _load(self) -> None:
        """Read the segments not read yet (a restart finds what the last run wrote); leftover
        temporary files of a crash mid-write are removed: their messages were never acked."""
        self.directory.mkdir(parents=True, exist_ok=True)
        for leftover in self.directory.glob("*.tmp"):
            leftover.unlink()
        for path in sorted(self.directory.glob("*.parquet")):
            if path.name in self._segments:
                continue
            try:
                segment = pd.read_parquet(path)
            except Exception as exc:  # pyarrow raises many types
                raise DataError(f"{self.name}: segment {path} is unreadable: {exc}") from None
            self._segments[path.name] = segment
            self._seqs.update(int(s) for s in segment[SEQ])
            self._frame = None

    def frame(self) -> pd.DataFrame:
        """Every row kept, oldest message first."""
        if self._frame is None:
            frames = [self._segments[k] for k in sorted(self._segments)]
            if not frames:
                return pd.DataFrame(columns=[*self.required, SEQ])
            frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].copy()
            for column in self.timestamps:
                frame[column] = parse_timestamps(frame, column, self.name)
            self._frame = frame
        return self._frame

    def _write(self, rows: list[dict[str, Any]]) -> None:
        """One durable segment: temporary file, fsync, rename, fsync of the directory."""
        frame = pd.DataFrame(rows)
        first, last = int(frame[SEQ].min()), int(frame[SEQ].max())
        path = self.directory / f"{first:020d}-{last:020d}.parquet"
        tmp = path.with_suffix(".tmp")
        try:
            with open(tmp, "wb") as out:
                frame.to_parquet(out, index=False)
                out.flush()
                os.fsync(out.fileno())
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            raise DataError(f"{self.name}: cannot keep messages {first}..{last}: {exc}") from None
        os.replace(tmp, path)
        _fsync_dir(self.directory)
        self._segments[path.name] = frame
        self._seqs.update(int(s) for s in frame[SEQ])
        self._frame = None

    def prune(self, end: datetime) -> None:
        """Delete the segments whose every row is older than ``end - keep`` (by the first of
        ``timestamps``; a log without one keeps everything): the local window stays bounded."""
        if self.keep is None or not self.timestamps:
            return
        horizon = pd.Timestamp(utc(end) - self.keep)
        column = self.timestamps[0]
        for name in sorted(self._segments):
            times = parse_timestamps(self._segments[name], column, self.name)
            if len(times) and times.max() < horizon:
                (self.directory / name).unlink(missing_ok=True)
                del self._segments[name]  # its sequence numbers stay known: never re-kept
                self._frame = None

    # -- the broker ------------------------------------------------------------------------

    def pull(self) -> int:
        """Consume the subject's new messages into a segment; the rows added."""
        url = server_url(self.url_env, self.name)
        try:
            return asyncio.run(self._pull(url))
        except DataError:
            raise
        except ImportError:
            raise DataError(f"{self.name}: the stream source needs nats-py: {_EXTRA}") from None
        except Exception as exc:  # nats-py raises its own types and OSError
            why = str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError | asyncio.TimeoutError) and not str(exc):
                why = f"the broker did not answer within {API_TIMEOUT}s"
            log.debug("%s: pull failed", self.name, exc_info=True)
            raise DataError(f"{self.name} at {_redact(url)}: {why}") from None

    async def _pull(self, url: str) -> int:
        import nats
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig
        from nats.js.errors import NotFoundError

        errors: list[Exception] = []

        async def remember(exc: Exception) -> None:  # nats-py logs each failed attempt
            errors.append(exc)

        try:  # nats-py retries the first connection by itself: bound it
            nc = await asyncio.wait_for(
                nats.connect(
                    servers=[url],
                    connect_timeout=2,
                    allow_reconnect=False,
                    max_reconnect_attempts=0,
                    error_cb=remember,
                ),
                timeout=5,
            )
        except (TimeoutError, OSError) as exc:
            why = str(errors[-1] if errors else exc) or "no answer"
            raise DataError(f"{self.name} at {_redact(url)}: cannot connect: {why}") from None
        added = 0
        bad: list[str] = []
        try:
            js = nc.jetstream(timeout=API_TIMEOUT)
            config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait)
            try:
                sub = await js.pull_subscribe(
                    self.subject, durable=self.durable, stream=self.stream, config=config
                )
            except NotFoundError:
                where = f"stream {self.stream!r}" if self.stream else "no stream"
                raise DataError(
                    f"{self.name}: {where} holds subject {self.subject!r} on {_redact(url)}"
                    " (create the JetStream stream first)"
                ) from None
            waited = False
            while True:
                try:
                    messages = await sub.fetch(self.batch, timeout=0.5)
                except (TimeoutError, NatsTimeout):  # nats-py raises either
                    # Messages a crashed run took and never acked come back after ack_wait:
                    # wait for them once rather than check a window with a hole in it.
                    info = await sub.consumer_info()
                    if info.num_ack_pending and not waited:
                        waited = True
                        try:
                            messages = await sub.fetch(self.batch, timeout=self.ack_wait + 2)
                        except (TimeoutError, NatsTimeout):  # nats-py raises either
                            break
                    else:
                        break
                rows = []
                for msg in messages:
                    seq = int(msg.metadata.sequence.stream)
                    if seq in self._seqs:
                        continue  # kept before a crash that came before its ack
                    row = self._row(msg.data, seq, bad)
                    if row is not None:
                        rows.append(row)
                if rows:
                    self._write(rows)
                    added += len(rows)
                for msg in messages:  # only now: the rows are on disk
                    await msg.ack()
                await nc.flush(timeout=API_TIMEOUT)  # the acks reached the broker
        finally:
            await nc.close()
        if bad:
            shown = "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else "")
            raise DataError(f"{self.name}: {len(bad)} message(s) skipped: {shown}")
        return added

    def _row(self, data: bytes, seq: int, bad: list[str]) -> dict[str, Any] | None:
        try:
            row = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            bad.append(f"message {seq} is not JSON ({exc})")
            return None
        if not isinstance(row, dict):
            bad.append(f"message {seq} is not a JSON object")
            return None
        missing = [c for c in self.required if c not in row]
        if missing:
            bad.append(f"message {seq}: column {missing[0]!r} is missing")
            return None
        for column in self.timestamps:
            try:
                pd.Timestamp(row[column])
            except (ValueError, TypeError) as exc:
                bad.append(f"message {seq}: {column!r} is not a time ({exc})")
                return None
        row[SEQ] = seq
        return row


def _redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def stream_log(policy: Policy, spec: Any, role: str, required: Sequence[str], home: Path) -> Any:
    """The ``StreamLog`` of a policy's ``data.production`` or ``data.labels`` block."""
    timestamps = [policy.timestamp] if role == "predictions" else []
    if role == "labels" and spec.arrived:
        timestamps = [spec.arrived]
    return StreamLog(
        subject=spec.subject,
        directory=home / "streams" / _safe(policy.model) / role,
        durable=spec.durable or f"reoptd-{policy.model}-{role}",
        stream=spec.stream,
        url_env=spec.url_env,
        ack_wait=spec.ack_wait.total_seconds(),
        keep=spec.keep,
        required=required,
        timestamps=timestamps,
    )


class StreamSource:
    """Production rows from a JetStream subject, kept locally; ``read`` pulls what is new."""

    def __init__(self, log: StreamLog, timestamp: str) -> None:
        self.log = log
        self.timestamp = timestamp
        self.name = log.name

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        self.log.pull()
        self.log.prune(end)
        frame = self.log.frame()
        ts = frame[self.timestamp]
        window = frame[(ts >= pd.Timestamp(utc(start))) & (ts < pd.Timestamp(utc(end)))]
        window = window.drop(columns=SEQ)
        return window.sort_values(self.timestamp, kind="stable").reset_index(drop=True)


class StreamLabels:
    """Late labels from a JetStream subject, in the order they arrived on it. With an
    ``arrived`` field a label is seen only by reads after it; without one, every label kept
    counts."""

    def __init__(self, log: StreamLog, policy: Policy, arrived: str | None = None) -> None:
        if policy.id is None:
            raise DataError(f"model {policy.model!r}: a label stream needs the policy's `id`")
        self.log = log
        self.arrived = arrived
        self.columns = [policy.id, policy.target] + ([arrived] if arrived else [])
        self.name = f"label {log.name}"

    def labels(self, until: datetime) -> pd.DataFrame:
        self.log.pull()
        self.log.prune(until)  # by arrival time, when the labels carry one
        frame = self.log.frame()[self.columns]
        if self.arrived is None:
            return frame
        frame = frame[frame[self.arrived] < pd.Timestamp(utc(until))]
        return frame.sort_values(self.arrived, kind="stable")
