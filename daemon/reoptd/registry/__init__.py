"""Storage: SQLModel tables, the content-addressed artifact store, and atomic promotion."""

from reoptd.registry._artifacts import ArtifactStore
from reoptd.registry._registry import Registry, check_view, make_engine
from reoptd.registry._tables import CheckRow, DecisionRow, EventRow, ModelRow, RunRow, VersionRow

__all__ = [
    "ArtifactStore",
    "CheckRow",
    "DecisionRow",
    "EventRow",
    "ModelRow",
    "Registry",
    "RunRow",
    "VersionRow",
    "check_view",
    "make_engine",
]
