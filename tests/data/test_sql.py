"""``kind: sql`` against the real PostgreSQL (ADBC) and the real MariaDB (SQLAlchemy + pymysql):
the time filter in the database, incremental reads with a local window that survives a restart,
explicit column types, a table receiving inserts while it is read, and bad input."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sql_servers
from label_streams import policy as stream_policy
from sql_servers import Database

from reoptd.data import SqlQuery, open_source, validate_batch
from reoptd.errors import DataError
from reoptd.policy import Policy

pytestmark = pytest.mark.external
sql_db, mariadb_url = sql_servers.sql_db, sql_servers.mariadb_url  # the fixtures

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _policy(**production: object) -> Policy:
    spec = {"kind": "sql", "url_env": "REOPTD_TEST_SQL", "table": "predictions", **production}
    return stream_policy(data={"production": spec})


def _rows(start: datetime, n: int, first_id: int = 0, every: int = 10) -> pd.DataFrame:
    rng = np.random.default_rng(first_id)
    return pd.DataFrame(
        {
            "request_id": np.arange(first_id, first_id + n),
            "ts": [start + timedelta(seconds=every * i) for i in range(n)],
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "segment": rng.choice(["a", "b"], n),
        }
    )


def _create(db: Database) -> None:
    ts = "TIMESTAMP(6) NULL" if db.kind == "mariadb" else "TIMESTAMPTZ"
    db.run(
        f"CREATE TABLE predictions (request_id BIGINT PRIMARY KEY, ts {ts} NOT NULL,"
        " x1 DOUBLE PRECISION, x2 DOUBLE PRECISION, segment VARCHAR(8))",
        "CREATE INDEX predictions_ts ON predictions (ts)",
    )


def _insert(db: Database, rows: pd.DataFrame) -> None:
    rows = rows.assign(ts=pd.to_datetime(rows.ts, utc=True).dt.tz_localize(None))
    rows.to_sql("predictions", db.engine, if_exists="append", index=False)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("REOPTD_HOME", str(tmp_path))
    return tmp_path


def test_reads_the_window_and_then_only_newer_rows(
    sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    _create(sql_db)
    _insert(sql_db, _rows(T0, 360))  # one hour, a row every 10 s
    source = open_source(_policy())
    reader = source.reader  # type: ignore[attr-defined]
    first = source.read(T0 + timedelta(minutes=30), T0 + timedelta(hours=1))
    assert len(first) == 180 and reader.fetched_rows == 180  # filtered in the database
    assert first.request_id.tolist() == list(range(180, 360))
    assert str(first.ts.dtype) == "datetime64[us, UTC]"
    assert first.ts.iloc[0] == pd.Timestamp(T0 + timedelta(minutes=30))

    _insert(sql_db, _rows(T0 + timedelta(hours=1), 60, first_id=360))  # ten more minutes
    second = source.read(T0 + timedelta(minutes=40), T0 + timedelta(minutes=70))
    assert second.request_id.tolist() == list(range(240, 420))
    # fetched: the ten new minutes and the last minute again (settle), nothing older
    assert reader.fetched_rows == 180 + 60 + 6

    # A restarted daemon (a new source on the same REOPTD_HOME) keeps the local window.
    _insert(sql_db, _rows(T0 + timedelta(minutes=70), 6, first_id=420))
    again = open_source(_policy())
    third = again.read(T0 + timedelta(minutes=41), T0 + timedelta(minutes=71))
    assert third.request_id.tolist() == list(range(246, 426))
    assert again.reader.fetched_rows == 6 + 6  # type: ignore[attr-defined]
    assert (home / "sources" / "stream" / "production" / "cursor.json").exists()


def test_a_query_with_binds(sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    _create(sql_db)
    _insert(sql_db, _rows(T0, 100))
    query = (
        "SELECT request_id, ts, x1, x2, segment FROM predictions"
        " WHERE ts >= :start AND ts < :end AND segment = 'a'"
    )
    source = open_source(_policy(table=None, query=query))
    rows = source.read(T0, T0 + timedelta(minutes=10))
    expected = _rows(T0, 100).head(60)
    assert rows.request_id.tolist() == expected[expected.segment == "a"].request_id.tolist()
    assert source.name == "sql query ($REOPTD_TEST_SQL)"


def test_column_types_are_mapped_explicitly(
    sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decimals become floats, timestamps with and without zone UTC, booleans 0/1 in numerical
    columns and "true"/"false" in categorical ones, enums strings."""
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    if sql_db.kind == "postgresql":
        sql_db.run(
            "CREATE TYPE plan AS ENUM ('basic', 'pro')",
            "CREATE TABLE predictions (request_id INT, ts TIMESTAMP, seen TIMESTAMPTZ,"
            " x1 NUMERIC(10, 3), x2 BOOLEAN, segment plan, flag BOOLEAN)",
        )
    else:
        sql_db.run(
            "CREATE TABLE predictions (request_id INT, ts DATETIME(6), seen TIMESTAMP(6) NULL,"
            " x1 DECIMAL(10, 3), x2 BOOLEAN, segment ENUM('basic', 'pro'), flag BOOLEAN)"
        )
    sql_db.run(
        "INSERT INTO predictions VALUES (1, '2026-05-01 10:00:00', '2026-05-01 10:00:01',"
        " 12.345, TRUE, 'pro', FALSE), (2, '2026-05-01 10:00:05', '2026-05-01 10:00:06',"
        " -0.5, FALSE, 'basic', TRUE)"
    )
    p = stream_policy(
        features={"numerical": ["x1", "x2"], "categorical": ["segment", "flag"]},
        data={"production": {"kind": "sql", "url_env": "REOPTD_TEST_SQL", "table": "predictions"}},
    )
    source = open_source(p)
    rows = source.read(T0 + timedelta(hours=10), T0 + timedelta(hours=11))
    assert rows.x1.tolist() == [12.345, -0.5] and rows.x1.dtype == np.float64
    assert rows.ts.tolist() == [
        pd.Timestamp("2026-05-01 10:00:00", tz="UTC"),
        pd.Timestamp("2026-05-01 10:00:05", tz="UTC"),
    ]
    assert rows.seen.iloc[0] == pd.Timestamp("2026-05-01 10:00:01", tz="UTC")
    assert rows.segment.tolist() == ["pro", "basic"]
    if sql_db.kind == "postgresql":  # MariaDB's BOOLEAN is TINYINT(1): numbers already
        assert rows.x2.tolist() == [1.0, 0.0]
        assert rows.flag.tolist() == ["false", "true"]
    checked = validate_batch(rows, p, source.name)  # what a check runs on: accepted as is
    assert checked.x2.dtype == np.float64


def test_a_table_receiving_inserts_while_it_is_read(
    sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer inserts rows stamped with the current time while the source reads up to it:
    every row is read exactly once, none is lost to a read that raced its commit."""
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    _create(sql_db)
    source = open_source(_policy(settle="2m"))
    batches, per_batch = 40, 25
    written = threading.Event()
    clock = {"now": T0}
    lock = threading.Lock()

    def writer() -> None:
        for b in range(batches):
            with lock:  # the batch's rows are stamped before "now" moves past them
                start = clock["now"]
                clock["now"] = start + timedelta(seconds=per_batch)
            _insert(sql_db, _rows(start, per_batch, first_id=b * per_batch, every=1))
        written.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not written.is_set() or reads == 0:
        with lock:
            now = clock["now"]
        window = source.read(T0, now)
        assert window.request_id.is_unique
        assert window.ts.is_monotonic_increasing
        reads += 1
    thread.join()
    final = source.read(T0, clock["now"])
    assert final.request_id.tolist() == list(range(batches * per_batch))
    assert reads > 1


# -- bad input --------------------------------------------------------------------------------


def _fails(source: object, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as error:
        source.read(T0, T0 + timedelta(hours=1))  # type: ignore[attr-defined]
    assert str(error.value).startswith(source.name)  # type: ignore[attr-defined]
    return error.value


def test_bad_input_is_a_data_error_naming_the_source(
    sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = open_source(_policy())
    _fails(source, "environment variable REOPTD_TEST_SQL .* is not set")
    monkeypatch.setenv("REOPTD_TEST_SQL", sql_db.url)
    _fails(source, "cannot read: .*predictions")  # no such table
    sql_db.run("CREATE TABLE predictions (request_id INT, x1 DOUBLE PRECISION)")
    _fails(source, "cannot read: .*ts")  # no timestamp column
    sql_db.run("DROP TABLE predictions", "CREATE TABLE predictions (ts VARCHAR(30), x1 INT)")
    sql_db.run("INSERT INTO predictions VALUES ('2026-05-01 00:10', 1)")
    query = "SELECT ts, x1 FROM predictions WHERE ts >= :start AND ts < :end"
    if sql_db.kind == "postgresql":  # PostgreSQL will not compare text with a timestamp
        query = "SELECT ts, x1 FROM predictions WHERE :start < :end"
    wrong = open_source(_policy(table=None, query=query))
    error = _fails(wrong, "timestamp column 'ts' is string, not a timestamp")
    assert error.column == "ts"


def test_unreachable_database_and_bad_credentials(
    sql_db: Database, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once it is closed
    scheme = "postgresql" if sql_db.kind == "postgresql" else "mysql+pymysql"
    monkeypatch.setenv("REOPTD_TEST_SQL", f"{scheme}://someone:secret@127.0.0.1:{port}/x")
    source = open_source(_policy())
    error = _fails(source, "cannot read: .*")
    assert "secret" not in str(error)
    if sql_db.kind == "postgresql":  # trust authentication: a role that does not exist
        bad = sql_db.url.replace("postgres@", "nobody_here:secret@")
    else:
        user = f"reader{port}"
        sql_db.run(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right'")
        bad = sql_db.url.replace("root@", f"{user}:wrong@")
    monkeypatch.setenv("REOPTD_TEST_SQL", bad)
    error = _fails(open_source(_policy()), "cannot read: .*")
    assert "secret" not in str(error) and "wrong" not in str(error)
    if sql_db.kind == "mariadb":
        assert "Access denied" in str(error)
        sql_db.run(f"DROP USER '{user}'@'%'")


def test_a_missing_driver_names_the_extra(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "adbc_driver_postgresql.dbapi", None)
    monkeypatch.setenv("REOPTD_TEST_SQL", "postgresql://postgres@127.0.0.1:5432/test")
    query = SqlQuery(
        url_env="REOPTD_TEST_SQL", url=None, table="t", query=None, time="ts", name="sql t"
    )
    with pytest.raises(DataError, match=r"pip install 'reoptd\[sql\]'"):
        query.fetch(T0, T0 + timedelta(hours=1))
