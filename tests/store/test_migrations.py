"""Schema migrations: a database from before a schema change is upgraded, not broken."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext

from reoptd.errors import ReoptdError
from reoptd.store.sql import VERSION_TABLE, SqlStore, make_engine


def _revision(url: str) -> str | None:
    engine = make_engine(url)
    with engine.connect() as conn:
        current = MigrationContext.configure(
            conn, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
    engine.dispose()
    return current


def test_a_new_database_is_created_at_the_newest_revision(db_url: str, tmp_path: Path) -> None:
    SqlStore(db_url, tmp_path / "a").close()
    assert _revision(db_url) == "0005"
    engine = make_engine(db_url)
    columns = {c["name"] for c in sa.inspect(engine).get_columns("checks")}
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert "signals" in columns
    assert {"ingested_predictions", "ingested_labels"} <= tables


def test_a_database_from_before_migrations_is_stamped_and_upgraded(
    tmp_path: Path, demo_policy
) -> None:
    """The first releases created tables without Alembic and without checks.signals."""
    from datetime import UTC, datetime

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE models (id INTEGER PRIMARY KEY, name VARCHAR NOT NULL UNIQUE,"
            " task VARCHAR NOT NULL, created_at DATETIME NOT NULL, champion_version INTEGER,"
            " champion_since DATETIME, policy JSON NOT NULL)"
        )
        conn.exec_driver_sql(
            "CREATE TABLE checks (id INTEGER PRIMARY KEY, model_id INTEGER NOT NULL,"
            " at DATETIME NOT NULL, window_start DATETIME NOT NULL, window_end DATETIME NOT NULL,"
            " status VARCHAR NOT NULL, reason VARCHAR NOT NULL, champion_version INTEGER,"
            " rows INTEGER NOT NULL, labelled_rows INTEGER NOT NULL, drift_share FLOAT,"
            " dataset_drift BOOLEAN, features JSON NOT NULL, metrics JSON NOT NULL,"
            " seconds FLOAT NOT NULL)"
        )
        conn.exec_driver_sql(
            "INSERT INTO models VALUES (1, 'demo_churn', 'classification',"
            " '2026-01-01 00:00:00', NULL, NULL, '{}')"
        )
        conn.exec_driver_sql(
            "INSERT INTO checks VALUES (1, 1, '2026-01-02 00:00:00', '2026-01-01 22:00:00',"
            " '2026-01-02 00:00:00', 'ok', '', 1, 720, 500, 0.2, 0, '{}', '{}', 0.1)"
        )
    engine.dispose()
    registry = SqlStore(url, tmp_path / "artifacts")
    (old,) = registry.checks("demo_churn")
    assert old.signals == {} and old.drift_share == 0.2  # kept, with the new column filled
    assert old.at == datetime(2026, 1, 2, tzinfo=UTC)
    registry.close()
    assert _revision(url) == "0005"


def test_a_database_newer_than_the_code_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    SqlStore(url, tmp_path / "a").close()
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")
    engine.dispose()
    with pytest.raises(ReoptdError, match="newer than this reoptd knows"):
        SqlStore(url, tmp_path / "a")
