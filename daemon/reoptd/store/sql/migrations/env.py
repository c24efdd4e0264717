"""Alembic environment for reoptd's tables. Run by ``reoptd.store.sql._migrate.upgrade``;
the connection comes in through ``config.attributes["connection"]``."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import reoptd.store.sql._tables  # noqa: F401 - registers the tables on SQLModel.metadata
from reoptd.store.sql._migrate import VERSION_TABLE

config = context.config
connection = config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
    # Optuna keeps its own Alembic history in `alembic_version` in the same database.
    version_table=VERSION_TABLE,
    compare_type=True,
    # ``upgrade`` runs every revision inside its own transaction, which on SQLite really holds
    # the DDL too (``make_engine`` bypasses pysqlite's implicit commits)
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
