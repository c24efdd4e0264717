"""Hard faults in the store: a kill -9 during the first start's migration, half-made databases
left by older releases, and concurrent champion changes from several processes."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from reoptd.store.sql import VERSION_TABLE, SqlStore, make_engine
from reoptd.store.sql._migrate import FIRST_TABLES

HEAD = "0005"


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(VERSION_TABLE):
                return None
            return conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar()
    finally:
        engine.dispose()


def test_a_database_stamped_at_0001_with_tables_missing_is_completed(tmp_path: Path) -> None:
    """An older reoptd stamped any database with a ``models`` table as complete."""
    url = f"sqlite:///{tmp_path / 'half.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE models (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE,"
            " task VARCHAR NOT NULL, created_at DATETIME NOT NULL, champion_version INTEGER,"
            " champion_since DATETIME, policy JSON NOT NULL)"
        )
        conn.exec_driver_sql(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql(f"INSERT INTO {VERSION_TABLE} VALUES ('0001')")
    engine.dispose()
    SqlStore(url, tmp_path / "a").close()
    assert FIRST_TABLES | {"ingested_labels", "ingested_predictions"} <= _tables(url)
    assert _revision(url) == HEAD


def test_a_database_without_a_version_table_and_only_some_tables_is_not_stamped(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'half.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE models (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE,"
            " task VARCHAR NOT NULL, created_at DATETIME NOT NULL, champion_version INTEGER,"
            " champion_since DATETIME, policy JSON NOT NULL)"
        )
    engine.dispose()
    SqlStore(url, tmp_path / "a").close()
    assert _tables(url) >= FIRST_TABLES
    assert _revision(url) == HEAD


_FIRST_START = textwrap.dedent(
    """
    import sys
    from reoptd.store.sql import SqlStore
    print("ready", flush=True)
    sys.stdin.readline()
    SqlStore(sys.argv[1], sys.argv[2]).close()
    print("done", flush=True)
    """
)


def _first_start(url: str, artifacts: Path) -> subprocess.Popen[str]:
    """A child process ready to make the database's first start when told "go"."""
    child = subprocess.Popen(
        [sys.executable, "-c", _FIRST_START, url, str(artifacts)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def _go(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


@pytest.mark.slow
def test_a_kill_at_any_instant_of_the_first_start_leaves_a_database_the_next_start_completes(
    tmp_path: Path,
) -> None:
    """First starts killed (SIGKILL) at a random instant of their migration, until 5 kills have
    landed inside one (at most 60 tries); the next start always brings the database to the
    newest revision with every table. The instants are drawn over the length of a first start
    timed just before on this machine, so a slower or faster machine still kills mid-way."""
    rng = random.Random(14)
    timed = _first_start(f"sqlite:///{tmp_path / 'timed.db'}", tmp_path / "artifacts")
    started = time.perf_counter()
    _go(timed)
    assert timed.stdout is not None and timed.stdout.readline().strip() == "done"
    span = time.perf_counter() - started
    timed.wait()
    landed = tries = 0
    while landed < 5 and tries < 60:
        tries += 1
        db = tmp_path / f"kill{tries}.db"
        url = f"sqlite:///{db}"
        child = _first_start(url, tmp_path / "artifacts")
        _go(child)
        time.sleep(rng.uniform(0.0, span))
        child.kill()
        child.wait()
        assert child.stdout is not None
        finished = child.stdout.read().strip() == "done"
        landed += not finished and db.exists()
        # the next start
        SqlStore(url, tmp_path / "artifacts").close()
        assert _revision(url) == HEAD
        assert _tables(url) >= FIRST_TABLES
    assert landed >= 5, f"only {landed} of {tries} kills landed inside a first start"


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, UTC
    from reoptd.store import open_store

    store = open_store(sys.argv[1], sys.argv[2])
    with store.model_lock("demo_churn"):
        store.start_run("demo_churn", started_at=datetime.now(UTC), trigger="drift_share")
        print("holding", flush=True)
        time.sleep(600)
    """
)


@pytest.mark.slow
def test_a_live_process_keeps_its_lock_and_its_run_and_loses_both_when_killed(
    db_url: str, tmp_path: Path, demo_policy
) -> None:
    """The CLI beside the daemon: it waits (bounded) and then says who holds the model, and
    never closes the daemon's in-flight run; once the daemon is killed, both are free."""
    from datetime import UTC, datetime

    from reoptd.errors import ModelBusy
    from reoptd.store import INTERRUPTED, open_store

    store = open_store(db_url, tmp_path / "artifacts")
    store.ensure_model(demo_policy, datetime.now(UTC))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, db_url, str(tmp_path / "artifacts")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with (
            pytest.raises(ModelBusy, match=f":{holder.pid}:"),
            store.model_lock("demo_churn", wait=0.5),
        ):
            pass
        assert store.close_interrupted_runs("demo_churn") == 0
        assert [r.outcome for r in store.runs("demo_churn")] == ["running"]
    finally:
        holder.kill()
        holder.wait()
    assert store.close_interrupted_runs("demo_churn") == 1
    (run,) = store.runs("demo_churn")
    assert run.outcome == "failed" and run.reason == INTERRUPTED
    with store.model_lock("demo_churn"):
        pass
    store.close()
