"""One module per schema revision (Alembic)."""

__all__: list[str] = []
