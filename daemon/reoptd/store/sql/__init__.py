"""The SQL store: SQLModel tables, Alembic migrations (``migrations/``) and ``SqlStore``, for
SQLite and PostgreSQL. The only package of reoptd that imports SQLAlchemy."""

from reoptd.store.sql._migrate import VERSION_TABLE, upgrade
from reoptd.store.sql._store import SqlStore, make_engine

__all__ = ["VERSION_TABLE", "SqlStore", "make_engine", "upgrade"]
