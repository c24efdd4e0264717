"""Each remote kind end to end through the real loop: S3 objects (moto on loopback) and a NATS
JetStream subject. Bootstrap (re-optimization), a check without labels, the source going away
(a failed check naming it, counted in reoptd_data_errors_total, the loop goes on), its return,
late labels that backfill the old window, and a metric trigger that re-optimizes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _nats import Broker
from label_streams import START, policy, stream

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.store import Store

pytestmark = [pytest.mark.external, pytest.mark.slow]

T0 = START + timedelta(hours=6)
FRAME = stream("none", change_at=T0 + timedelta(days=1), hours=10, every=timedelta(seconds=20))
HISTORY = FRAME[FRAME.ts < T0 - timedelta(hours=1)]
LATE = FRAME[(FRAME.ts >= T0 - timedelta(hours=1)) & (FRAME.ts < T0 + timedelta(hours=3))]


def _labels(rows: pd.DataFrame, arrived: Any) -> pd.DataFrame:
    return rows[["request_id", "y"]].assign(labelled_at=arrived)


def _scenario(
    data: dict[str, Any],
    store: Store,
    metrics: Metrics,
    add_labels: Callable[[str, pd.DataFrame], None],
    break_source: Callable[[], None],
    restore_source: Callable[[], None],
    source_name: str,
) -> None:
    p = policy(
        data=data,
        monitor={"every": "1h", "window": "2h", "min_rows": 50},
        triggers=[{"metric": {"below": 1.01, "min_labels": 50}}],
    )
    clock = SimulatedClock(T0)
    loop = ModelLoop(p, store, metrics)
    loop.start()
    name = p.model
    add_labels("history", _labels(HISTORY, HISTORY.ts + timedelta(minutes=30)))
    loop.optimize(clock.now(), trigger="bootstrap")
    assert store.model(name).champion_version == 1

    early = loop.cycle(clock.advance(timedelta(hours=1))).check  # T0+1h, no labels yet
    assert early is not None and early.status == "ok", early and early.reason
    assert early.rows == 360 and early.labelled_rows == 0

    sample = metrics.registry.get_sample_value
    errors_before = sample("reoptd_data_errors_total", {"model": name}) or 0
    break_source()
    failed = loop.cycle(clock.advance(timedelta(hours=1))).check  # T0+2h
    assert failed is not None and failed.status == "failed"
    assert source_name in failed.reason, failed.reason
    assert sample("reoptd_data_errors_total", {"model": name}) == errors_before + 1

    restore_source()
    add_labels("late", _labels(LATE, T0 + timedelta(hours=2, minutes=30)))
    outcome = loop.cycle(clock.advance(timedelta(hours=1)))  # T0+3h
    current = outcome.check
    assert current is not None and current.status == "ok", current and current.reason
    assert current.labelled_rows == 360 and 0.6 < current.metrics["accuracy"] < 1.0
    old = next(c for c in store.checks(name) if c.id == early.id)
    assert old.labelled_rows == 360 and set(old.metrics) == {"accuracy"}  # backfilled
    assert sample("reoptd_backfilled_windows_total", {"model": name}) == 1
    assert outcome.decision is not None and outcome.decision.triggers == ["metric"]
    assert outcome.run is not None and outcome.run.trigger == "metric"
    assert outcome.run.outcome in ("promoted", "rejected"), outcome.run


def test_s3_objects_end_to_end(s3_env: str, sqlite_registry: Store, metrics: Metrics) -> None:
    import s3fs

    bucket = s3_env
    fs = s3fs.S3FileSystem()

    def put(key: str, frame: pd.DataFrame) -> None:
        with fs.open(f"{bucket}/{key}", "wb") as out:
            frame.to_parquet(out, index=False)

    def put_predictions() -> None:
        for day, rows in FRAME.drop(columns="y").groupby(FRAME.ts.dt.date):
            put(f"pred/date={day}/rows.parquet", rows)

    put_predictions()
    kept: dict[str, pd.DataFrame] = {}

    def add_labels(name: str, labels: pd.DataFrame) -> None:
        kept[name] = labels
        put(f"labels/date={T0.date()}/{name}.parquet", labels)

    def restore() -> None:
        fs.mkdir(bucket)
        put_predictions()
        for name, labels in kept.items():
            put(f"labels/date={T0.date()}/{name}.parquet", labels)

    _scenario(
        {
            "production": {"kind": "files", "path": f"s3://{bucket}/pred/date=*/*.parquet"},
            "labels": {
                "kind": "files",
                "path": f"s3://{bucket}/labels/date=*/*.parquet",
                "arrived": "labelled_at",
            },
        },
        sqlite_registry,
        metrics,
        add_labels,
        break_source=lambda: fs.rm(bucket, recursive=True),  # the bucket is gone
        restore_source=restore,
        source_name=f"s3://{bucket}/pred/date=*/*.parquet",
    )


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.copy()
    for column in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[column]):
            out[column] = out[column].map(lambda t: t.isoformat())
    return out.to_dict(orient="records")


def test_nats_stream_end_to_end(
    jetstream: Broker,
    sqlite_registry: Store,
    metrics: Metrics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    monkeypatch.setenv("TEST_BROKER_URL", jetstream.url)
    jetstream.publish(jetstream.predictions, _records(FRAME.drop(columns="y")))

    def add_labels(name: str, labels: pd.DataFrame) -> None:
        jetstream.publish(jetstream.labels, _records(labels))

    spec = {"kind": "stream", "stream": jetstream.stream, "url_env": "TEST_BROKER_URL"}
    _scenario(
        {
            "production": {**spec, "subject": jetstream.predictions},
            "labels": {**spec, "subject": jetstream.labels, "arrived": "labelled_at"},
        },
        sqlite_registry,
        metrics,
        add_labels,
        # the broker is gone (its address answers nothing), then back
        break_source=lambda: monkeypatch.setenv("TEST_BROKER_URL", "nats://127.0.0.1:9"),
        restore_source=lambda: monkeypatch.setenv("TEST_BROKER_URL", jetstream.url),
        source_name=f"stream {jetstream.predictions} at nats://127.0.0.1:9",
    )
    kept = tmp_path / "streams" / "stream"
    assert sorted(p.name for p in kept.iterdir()) == ["labels", "predictions"]
