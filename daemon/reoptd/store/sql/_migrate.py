"""Schema migrations (Alembic): every start brings the database to the code's schema.

A database made before migrations existed (tables but no ``alembic_version``) is stamped at the
first revision, whose schema it has, and upgraded from there. A database newer than this code is
refused with a clear message rather than used.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from reoptd.errors import ReoptdError

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST = "0001"
#: not Alembic's default `alembic_version`: Optuna's studies share the database and use that one
VERSION_TABLE = "reoptd_schema_version"


def _config(connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(engine: Engine) -> None:
    """Bring the database to the newest schema (one transaction per revision)."""
    with engine.begin() as connection:
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
        if current is None and inspect(connection).has_table("models"):
            command.stamp(config, FIRST)
        command.upgrade(config, "head")
