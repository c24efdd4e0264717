"""``kind: sql`` through the real loop, on the real PostgreSQL and the real MariaDB: predictions in
one table, labels arriving later (and one corrected) in another; a check without labels, the
backfill of that window once they land, a metric trigger that fires and the re-optimization it
starts; then the database breaking in the ways production databases do, each a failed check
naming the source and counted in reoptd_data_errors_total, and the loop recovering."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import sql_servers
from label_streams import START, policy, stream
from sql_servers import Database

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.store import Store

pytestmark = [pytest.mark.external, pytest.mark.slow]
sql_db, mariadb_url = sql_servers.sql_db, sql_servers.mariadb_url  # the fixtures

T0 = START + timedelta(hours=6)  # the daemon starts here; rows before it are history


def _policy(**changes: object) -> Policy:
    url = {"kind": "sql", "url_env": "REOPTD_TEST_SQL"}
    return policy(
        data={
            "production": {**url, "table": "predictions"},
            "labels": {**url, "table": "labels", "arrived": "labelled_at"},
        },
        monitor={"every": "1h", "window": "2h", "min_rows": 50},
        **changes,
    )


def _tables(db: Database, frame: pd.DataFrame) -> None:
    ts = "DATETIME(6)" if db.kind == "mariadb" else "TIMESTAMP"  # without zone: UTC
    db.run(
        f"CREATE TABLE predictions (request_id BIGINT PRIMARY KEY, ts {ts} NOT NULL,"
        " x1 DOUBLE PRECISION, x2 DOUBLE PRECISION, segment VARCHAR(8))",
        "CREATE INDEX predictions_ts ON predictions (ts)",
        f"CREATE TABLE labels (request_id BIGINT PRIMARY KEY, y DOUBLE PRECISION,"
        f" labelled_at {ts} NOT NULL)",
        "CREATE INDEX labels_arrived ON labels (labelled_at)",
    )
    rows = frame.drop(columns="y").assign(ts=frame.ts.dt.tz_localize(None))
    rows.to_sql("predictions", db.engine, if_exists="append", index=False)


def _labels(db: Database, rows: pd.DataFrame, arrived: pd.Series | pd.Timestamp) -> None:
    labels = rows[["request_id", "y"]].assign(labelled_at=arrived)
    labels["labelled_at"] = pd.to_datetime(labels.labelled_at, utc=True).dt.tz_localize(None)
    labels.to_sql("labels", db.engine, if_exists="append", index=False)


@pytest.fixture
def loop_env(
    sql_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Database, pd.DataFrame]:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    frame = stream("none", change_at=T0 + timedelta(days=1), hours=10, every=timedelta(seconds=10))
    _tables(sql_db, frame)
    history = frame[frame.ts < T0 - timedelta(hours=1)]
    _labels(sql_db, history, history.ts + timedelta(minutes=30))
    return sql_db, frame


def test_check_backfill_and_reoptimization(
    loop_env: tuple[Database, pd.DataFrame], sqlite_registry: Store, metrics: Metrics
) -> None:
    db, frame = loop_env
    p = _policy(triggers=[{"metric": {"below": 1.01, "min_labels": 50, "for": 2}}])
    clock = SimulatedClock(T0)
    loop = ModelLoop(p, sqlite_registry, metrics)
    loop.start()
    assert type(loop.source).__name__ == "LabeledSource"
    loop.optimize(clock.now(), trigger="bootstrap")  # v1, trained on the labelled history
    assert sqlite_registry.model(p.model).champion_version == 1

    early = loop.cycle(clock.advance(timedelta(hours=1))).check  # T0+1h: no labels yet
    assert early is not None and early.status == "ok", early
    assert early.rows == 720 and early.labelled_rows == 0 and early.metrics == {}

    # The window's labels land at T0+1h30, one of them wrong; it is corrected at T0+1h45.
    window = frame[(frame.ts >= early.window_start) & (frame.ts < early.window_end)]
    first = int(window.request_id.iloc[0])
    wrong = window.assign(y=window.y.where(window.request_id != first, 1 - window.y))
    _labels(db, wrong, pd.Timestamp(T0 + timedelta(minutes=90)))
    db.run(
        "UPDATE labels SET y = :y, labelled_at = :at WHERE request_id = :id",
        y=float(window.y.iloc[0]),
        at=(T0 + timedelta(minutes=105)).replace(tzinfo=None),
        id=first,
    )

    outcome = loop.cycle(clock.advance(timedelta(hours=1)))  # T0+2h
    old = next(c for c in sqlite_registry.checks(p.model) if c.id == early.id)
    assert old.labelled_rows == 720  # backfilled from the late labels
    assert 0.6 < old.metrics["accuracy"] < 1.0
    assert outcome.check is not None and outcome.check.status == "ok"
    assert [b["check_id"] for b in outcome.check.signals["backfilled"]] == [early.id]
    seen = loop.source.read(early.window_start, clock.now())
    assert seen.set_index("request_id").y[first] == window.y.iloc[0]  # the corrected label
    sample = metrics.registry.get_sample_value
    assert sample("reoptd_backfilled_windows_total", {"model": p.model}) == 1
    # the metric trigger judged the backfilled check and this one, and started a run
    assert outcome.decision is not None and outcome.decision.triggers == ["metric"]
    assert outcome.run is not None and outcome.run.outcome in ("promoted", "rejected")
    assert outcome.run.steps, outcome.run


def test_a_broken_database_is_a_failed_check_and_the_loop_recovers(
    loop_env: tuple[Database, pd.DataFrame],
    sqlite_registry: Store,
    metrics: Metrics,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db, _ = loop_env
    p = _policy()
    clock = SimulatedClock(T0)
    loop = ModelLoop(p, sqlite_registry, metrics)
    loop.start()
    loop.optimize(clock.now(), trigger="bootstrap")
    errors = 0

    key = {"model": p.model}

    def failed(match: str) -> None:
        nonlocal errors
        check = loop.cycle(clock.advance(timedelta(minutes=20))).check
        assert check is not None and check.status == "failed", check
        assert "sql predictions ($REOPTD_TEST_SQL)" in check.reason and match in check.reason
        errors += 1
        assert metrics.registry.get_sample_value("reoptd_data_errors_total", key) == errors

    def ok() -> None:
        check = loop.cycle(clock.advance(timedelta(minutes=20))).check
        assert check is not None and check.status == "ok", check

    ok()
    db.run("ALTER TABLE predictions RENAME TO predictions_moved")  # a missing table
    failed("predictions")
    db.run("ALTER TABLE predictions_moved RENAME TO predictions")
    ok()
    url = db.url
    monkeypatch.setenv("REOPTD_TEST_SQL", url.replace("127.0.0.1:", "127.0.0.1:1"))  # no server
    failed("cannot read")
    monkeypatch.delenv("REOPTD_TEST_SQL")  # the credential went away
    failed("REOPTD_TEST_SQL")
    monkeypatch.setenv("REOPTD_TEST_SQL", url)
    ok()
    # A missing feature column: the drift of the other columns is still measured, and the
    # check records why the model's outputs were not (as for files).
    db.run("ALTER TABLE predictions RENAME COLUMN x2 TO x3")
    check = loop.cycle(clock.advance(timedelta(minutes=20))).check
    assert check is not None and check.status == "ok"
    problem = check.signals["data_problem"]
    assert "sql predictions ($REOPTD_TEST_SQL)" in problem and "'x2' is missing" in problem
    errors += 1
    assert metrics.registry.get_sample_value("reoptd_data_errors_total", key) == errors
    db.run("ALTER TABLE predictions RENAME COLUMN x3 TO x2")
    ok()
