"""The store contract (reoptd.testing.store_contract) on every store: in memory, SQLite, and a
real PostgreSQL (the `external` parameter). `pytest -k contract` runs exactly this suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from reoptd.store import ArtifactStore, MemoryStore, Store
from reoptd.store.sql import SqlStore
from reoptd.testing.store_contract import StoreContract, StoreFactory


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.external)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    if request.param == "memory":
        return MemoryStore
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'contract.db'}"
    else:
        url = request.getfixturevalue("postgres_url")

    def make(artifacts: ArtifactStore) -> Store:
        return SqlStore(url, artifacts)

    return make


class TestStoreContract(StoreContract):
    """Every test of the contract, on each store of ``store_factory``."""
