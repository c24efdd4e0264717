"""Schema migrations (Alembic): every start brings the database to the code's schema.

The whole upgrade is ONE transaction, DDL included (PostgreSQL's DDL is transactional; on SQLite
``make_engine`` bypasses pysqlite's implicit commits, and the upgrade begins with ``BEGIN
IMMEDIATE``): a start killed at any instant leaves the database as it was before it, and the next
start does the whole upgrade. Two processes starting at once take turns (SQLite's write lock,
PostgreSQL's transaction-level advisory lock ``MIGRATION_LOCK``).

A database without a version table (made before migrations existed, or by an older reoptd whose
first start was cut off) is stamped at the first revision only if it has every table of that
revision; otherwise revision 0001 creates the missing tables. A database whose version table
claims a revision but lacks one of the code's tables (the older reoptd stamped half-made
databases at 0001) gets the missing tables created. A database newer than this code is refused
with a clear message rather than used.
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

import reoptd.store.sql._tables  # noqa: F401 - registers the tables on SQLModel.metadata
from reoptd.errors import ReoptdError

log = logging.getLogger("reoptd.store.sql")

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST = "0001"
#: the tables revision 0001 creates: a database without a version table is at 0001 only if it
#: has all of them
FIRST_TABLES = frozenset(
    {"models", "champion_events", "checks", "model_versions", "decisions", "optimization_runs"}
)
#: not Alembic's default `alembic_version`: Optuna's studies share the database and use that one
VERSION_TABLE = "reoptd_schema_version"
#: the PostgreSQL advisory-lock key migrations hold (any fixed 64-bit number)
MIGRATION_LOCK = 0x7265_6F70_7464_0001
#: the lock the first creation of Optuna's tables holds (PostgreSQL key; MySQL/MariaDB name)
OPTUNA_LOCK = 0x7265_6F70_7464_0002
OPTUNA_LOCK_NAME = "reoptd_optuna_tables"


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _current(engine: Engine) -> bool:
    """Whether the database is at the newest revision with every table (read only: most starts,
    a CLI command's among them, need no write lock)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        head = ScriptDirectory.from_config(_config(connection)).get_current_head()
        if context.get_current_revision() != head:
            return False
        existing = set(inspect(connection).get_table_names())
        return all(t.name in existing for t in SQLModel.metadata.sorted_tables)


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema, in one transaction."""
    if _current(engine):
        return
    # "reoptd_immediate" (see make_engine): BEGIN IMMEDIATE on SQLite
    with engine.execution_options(reoptd_immediate=True).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config = _config(connection)
        script = ScriptDirectory.from_config(config)
        current = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE}
        ).get_current_revision()
        known = {rev.revision for rev in script.walk_revisions()}
        if current is not None and current not in known:
            raise ReoptdError(
                f"the database is at schema revision {current}, newer than this reoptd knows "
                f"({script.get_current_head()}): upgrade reoptd, or point REOPTD_DB_URL elsewhere"
            )
        if current is None and set(inspect(connection).get_table_names()) >= FIRST_TABLES:
            command.stamp(config, FIRST)
        elif current is not None:
            _complete(connection, FIRST_TABLES)  # the later revisions alter these
        command.upgrade(config, "head")
        _complete(connection)


def _complete(connection: Connection, only: frozenset[str] | None = None) -> None:
    """Create any of the code's tables (of ``only``) the database lacks, in their newest form
    (a half-made database an older reoptd stamped as complete); the revisions that add columns
    skip the columns a table made here already has."""
    existing = set(inspect(connection).get_table_names())
    missing = [
        t
        for t in SQLModel.metadata.sorted_tables
        if t.name not in existing and (only is None or t.name in only)
    ]
    if missing:
        log.warning(
            "the database lacked tables %s: created them", ", ".join(t.name for t in missing)
        )
        SQLModel.metadata.create_all(connection, tables=missing)


def create_optuna_tables(engine: Engine, url: str) -> None:
    """Create Optuna's tables (and its version row) in the database at ``url`` unless they
    exist, one process at a time. Optuna's ``RDBStorage`` creates them on first use, unlocked:
    two tune runs starting at once on a fresh PostgreSQL database (two runner threads, two
    executors' workers, two replicas) both try, and one fails with ``UniqueViolation``. Here a
    session-level advisory lock on PostgreSQL (``GET_LOCK`` on MySQL/MariaDB) makes the others
    wait, then find the tables made. SQLite, one machine's file, is left to its write lock."""
    import optuna

    with engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": OPTUNA_LOCK})
        elif dialect in ("mysql", "mariadb"):
            connection.execute(text("SELECT GET_LOCK(:name, -1)"), {"name": OPTUNA_LOCK_NAME})
        try:
            optuna.storages.RDBStorage(url).engine.dispose()
        finally:
            if dialect == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": OPTUNA_LOCK})
            elif dialect in ("mysql", "mariadb"):
                connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": OPTUNA_LOCK_NAME})
            connection.rollback()
