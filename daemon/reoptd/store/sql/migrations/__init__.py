"""Alembic migrations of the SQL store (run by ``reoptd.store.sql.upgrade``)."""

__all__: list[str] = []
