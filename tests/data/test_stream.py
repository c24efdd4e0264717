"""``kind: stream``: rows consumed from a real NATS JetStream (127.0.0.1:4222), kept as Parquet
segments under REOPTD_HOME, acked only once on disk; a crash mid-batch loses nothing and
duplicates nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from _nats import Broker

from reoptd.data import open_source
from reoptd.errors import DataError
from reoptd.policy import Policy

pytestmark = pytest.mark.external

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _policy(broker: Broker, labels: bool = False, **production: Any) -> Policy:
    data: dict[str, Any] = {
        "production": {"kind": "stream", "subject": broker.predictions, **production}
    }
    if labels:
        data["labels"] = {"kind": "stream", "subject": broker.labels, "arrived": "at"}
    return Policy.model_validate(
        {
            "version": 1,
            "model": f"m-{broker.stream}",
            "task": "classification",
            "target": "y",
            "id": "rid",
            "timestamp": "ts",
            "features": {"numerical": ["x"], "categorical": ["c"]},
            "data": data,
            "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
        }
    )


def _rows(first: int, n: int) -> list[dict[str, Any]]:
    return [
        {"rid": i, "ts": (T0 + timedelta(minutes=i)).isoformat(), "x": i / 10, "c": "ab"[i % 2]}
        for i in range(first, first + n)
    ]


def test_rows_are_kept_on_disk_then_acked_and_read_once(
    jetstream: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    jetstream.publish(jetstream.predictions, _rows(0, 30))
    policy = _policy(jetstream)
    source = open_source(policy)
    assert source.name == f"stream {jetstream.predictions}"
    window = source.read(T0 + timedelta(minutes=10), T0 + timedelta(minutes=20))
    assert list(window.rid) == list(range(10, 20))
    assert str(window.ts.dt.tz) == "UTC" and "_seq" not in window.columns
    segments = sorted((tmp_path / "streams" / policy.model / "predictions").glob("*.parquet"))
    assert [s.name for s in segments] == [f"{1:020d}-{30:020d}.parquet"]
    consumer = jetstream.consumer(f"reoptd-{policy.model}-predictions")
    assert consumer.ack_floor.stream_seq == 30 and consumer.num_pending == 0

    jetstream.publish(jetstream.predictions, _rows(30, 5))
    everything = source.read(T0, T0 + timedelta(days=1))
    assert list(everything.rid) == list(range(35))

    # A new daemon (same REOPTD_HOME) reads the kept window without the broker resending it.
    again = open_source(policy).read(T0, T0 + timedelta(days=1))
    assert list(again.rid) == list(range(35))


CRASH = """
import json, os, sys
from reoptd.data import _stream
from reoptd.policy import Policy

policy = Policy.model_validate(json.loads(sys.argv[1]))
when, calls = sys.argv[2], []
write = _stream.StreamLog._write

def crashing(self, rows):
    calls.append(len(rows))
    if len(calls) == 2 and when == "before-write":
        os._exit(9)
    write(self, rows)
    if len(calls) == 2 and when == "after-write":
        os._exit(9)  # on disk, never acked

_stream.StreamLog._write = crashing
log = _stream.stream_log(policy, policy.data.production, "predictions",
                         ["ts", "x", "c"], _stream.Path(os.environ["REOPTD_HOME"]))
log.batch = 20
log.pull()
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_a_consumer_killed_mid_batch_resumes_without_loss_or_duplicates(
    jetstream: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    jetstream.publish(jetstream.predictions, _rows(0, 50))
    policy = _policy(jetstream, ack_wait="1s")
    done = subprocess.run(
        [sys.executable, "-c", CRASH, json.dumps(policy.model_dump(mode="json")), when],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 9, done.stderr
    kept = sorted((tmp_path / "streams" / policy.model / "predictions").glob("*.parquet"))
    assert len(kept) == (1 if when == "before-write" else 2)  # the first batch was acked

    window = open_source(policy).read(T0, T0 + timedelta(days=1))
    assert list(window.rid) == list(range(50))  # nothing lost, nothing twice
    consumer = jetstream.consumer(f"reoptd-{policy.model}-predictions")
    assert consumer.num_ack_pending == 0 and consumer.num_pending == 0


def test_bad_messages_are_named_acked_and_do_not_block_the_subject(
    jetstream: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    jetstream.publish(jetstream.predictions, [*_rows(0, 3), b"{not json", {"rid": 9}, [1, 2]])
    source = open_source(_policy(jetstream))
    with pytest.raises(DataError) as error:
        source.read(T0, T0 + timedelta(days=1))
    text = str(error.value)
    assert text.startswith(f"stream {jetstream.predictions}: 3 message(s) skipped")
    assert "message 4 is not JSON" in text and "message 5: column 'ts' is missing" in text
    jetstream.publish(jetstream.predictions, _rows(3, 2))
    assert list(source.read(T0, T0 + timedelta(days=1)).rid) == [0, 1, 2, 3, 4]


def test_an_unreachable_broker_or_missing_stream_is_a_data_error_naming_the_source(
    jetstream: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    monkeypatch.setenv("TEST_NATS_URL", "nats://127.0.0.1:9")  # nothing listens there
    source = open_source(_policy(jetstream, url_env="TEST_NATS_URL"))
    with pytest.raises(DataError, match=rf"stream {jetstream.predictions} at nats://127.0.0.1:9"):
        source.read(T0, T0 + timedelta(hours=1))
    monkeypatch.delenv("TEST_NATS_URL")
    with pytest.raises(DataError, match=r"environment variable TEST_NATS_URL .* is not set"):
        source.read(T0, T0 + timedelta(hours=1))
    missing = open_source(_policy(jetstream, subject="nobody.listens.here"))
    with pytest.raises(DataError, match=r"no stream holds subject 'nobody\.listens\.here'"):
        missing.read(T0, T0 + timedelta(hours=1))


def test_a_policy_never_holds_the_broker_url() -> None:
    base = {"kind": "stream", "subject": "s", "url_env": "nats://user:pw@host:4222"}
    with pytest.raises(ValueError, match="url_env"):
        Policy.model_validate(
            {
                "version": 1,
                "model": "m",
                "task": "classification",
                "target": "y",
                "timestamp": "ts",
                "features": {"numerical": ["x"]},
                "data": {"production": base},
                "train": {"estimator": "sklearn.linear_model.LogisticRegression"},
            }
        )


def test_the_local_window_keeps_only_what_keep_says(
    jetstream: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    policy = _policy(jetstream, keep="20m")
    kept = tmp_path / "streams" / policy.model / "predictions"
    source = open_source(policy)
    jetstream.publish(jetstream.predictions, _rows(0, 30))
    assert len(source.read(T0, T0 + timedelta(minutes=30))) == 30  # horizon T0+10m: one segment
    jetstream.publish(jetstream.predictions, _rows(30, 10))
    window = source.read(T0, T0 + timedelta(minutes=60))  # horizon T0+40m: both segments older
    assert window.empty and list(kept.iterdir()) == []
    jetstream.publish(jetstream.predictions, _rows(40, 5))
    window = source.read(T0, T0 + timedelta(minutes=60))
    assert list(window.rid) == [40, 41, 42, 43, 44]  # the pruned rows never come back
    assert sorted(p.name for p in kept.iterdir()) == [f"{41:020d}-{45:020d}.parquet"]
