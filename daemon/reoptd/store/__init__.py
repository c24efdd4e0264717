"""The daemon's state behind one contract: ``Store`` (records in, records out), its SQL and
in-memory implementations, and the content-addressed artifact store.

``open_store(url, artifacts)`` turns a URL into a store: ``memory://`` for ``MemoryStore``,
anything else is an SQLAlchemy URL for ``SqlStore``.
"""

from __future__ import annotations

from pathlib import Path

from reoptd.store.artifacts import ArtifactStore, LocalArtifactStore, open_artifacts
from reoptd.store.base import HEARTBEAT, INTERRUPTED, LEASE, Listener, Store, check_view
from reoptd.store.memory import MemoryStore
from reoptd.store.records import (
    ChampionSummary,
    CheckRecord,
    DecisionRecord,
    EventRecord,
    IngestedLabel,
    IngestedPrediction,
    IngestedRow,
    ModelRecord,
    ProcessRecord,
    RunRecord,
    RunStats,
    VersionRecord,
)

#: the URL of ``MemoryStore``
MEMORY_URL = "memory://"


def open_store(url: str, artifacts: str | Path | ArtifactStore) -> Store:
    """The store at ``url`` with its artifacts in ``artifacts`` (a directory or a store)."""
    if url == MEMORY_URL:
        return MemoryStore(artifacts)
    from reoptd.store.sql import SqlStore  # SQLAlchemy only for the stores that need it

    return SqlStore(url, artifacts)


__all__ = [
    "HEARTBEAT",
    "INTERRUPTED",
    "LEASE",
    "MEMORY_URL",
    "ArtifactStore",
    "ChampionSummary",
    "CheckRecord",
    "DecisionRecord",
    "EventRecord",
    "IngestedLabel",
    "IngestedPrediction",
    "IngestedRow",
    "Listener",
    "LocalArtifactStore",
    "MemoryStore",
    "ModelRecord",
    "ProcessRecord",
    "RunRecord",
    "RunStats",
    "Store",
    "VersionRecord",
    "check_view",
    "open_artifacts",
    "open_store",
]
