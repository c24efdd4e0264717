"""The daemon's tables (SQLModel). SQLite by default; any SQLAlchemy URL works.

Times are stored as UTC and always read back timezone-aware (SQLite drops the zone otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from reoptd.clock import utc


class UTCDateTime(TypeDecorator):
    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else utc(value)


def _time(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _json() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class ModelRow(SQLModel, table=True):
    __tablename__ = "models"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True)
    task: str
    created_at: datetime = _time()
    champion_version: int | None = None
    champion_since: datetime | None = _time(nullable=True)
    policy: dict[str, Any] = _json()


class VersionRow(SQLModel, table=True):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    version: int
    created_at: datetime = _time()
    status: str = "candidate"  # candidate -> champion | rejected | pending (approval) | retired
    trigger: str = "manual"
    parent_version: int | None = None
    estimator: str = ""
    params: dict[str, Any] = _json()
    metrics: dict[str, Any] = _json()  # validation results: {"holdout": {...}, "champion": {...}}
    artifact_path: str = ""
    sha256: str = ""
    size_bytes: int = 0
    reference_sha256: str = ""  # the drift reference sample (Parquet) in the artifact store
    train_rows: int = 0
    train_start: datetime | None = _time(nullable=True)
    train_end: datetime | None = _time(nullable=True)


class CheckRow(SQLModel, table=True):
    __tablename__ = "checks"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    at: datetime = _time()
    window_start: datetime = _time()
    window_end: datetime = _time()
    status: str  # ok | failed | skipped
    reason: str = ""
    champion_version: int | None = None
    rows: int = 0
    labelled_rows: int = 0
    drift_share: float | None = None
    dataset_drift: bool | None = None
    features: dict[str, Any] = _json()  # {feature: {"score", "drifted", "method", "threshold"}}
    metrics: dict[str, Any] = _json()  # {metric name: value} on labelled rows
    signals: dict[str, Any] = _json()  # prediction_drift, new_rows, estimated metrics
    seconds: float = 0.0


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    check_id: int | None = Field(default=None, foreign_key="checks.id")
    at: datetime = _time()
    fire: bool
    triggers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    reasons: str = ""


class RunRow(SQLModel, table=True):
    """One re-optimization run: its steps, timings and outcome."""

    __tablename__ = "optimization_runs"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    decision_id: int | None = Field(default=None, foreign_key="decisions.id")
    started_at: datetime = _time()
    finished_at: datetime | None = _time(nullable=True)
    trigger: str
    outcome: str = "running"  # promoted | rejected | pending | failed
    reason: str = ""
    champion_version: int | None = None
    challenger_version: int | None = None
    steps: dict[str, Any] = _json()  # {step: {"seconds": ..., ...}}
    seconds: float = 0.0
    owner: str | None = None  # the process running it (processes.owner)
    job: dict[str, Any] = _json()  # what executing it needs: policy, now, champion, trigger
    attempts: int = 0  # claims so far
    lease_until: datetime | None = _time(nullable=True)  # real time; renewed by its executor


class ProcessRow(SQLModel, table=True):
    """A process using the database: its lease (``seen_at``, real time) and, for a daemon, its
    clock's reading."""

    __tablename__ = "processes"
    owner: str = Field(primary_key=True)
    host: str
    pid: int
    seen_at: datetime = _time()
    clock_at: datetime | None = _time(nullable=True)
    clock_speed: float | None = None


class LockRow(SQLModel, table=True):
    """The lock of one model's cycles and runs: held by ``owner`` (empty: free)."""

    __tablename__ = "model_locks"
    model: str = Field(primary_key=True)
    owner: str = ""


class OwnerRow(SQLModel, table=True):
    """Which replica checks a model: ``owner`` (a live process) until it stops or dies."""

    __tablename__ = "model_owners"
    model: str = Field(primary_key=True)
    owner: str = ""


class EventRow(SQLModel, table=True):
    """Every change of champion: promotions and rollbacks, in order."""

    __tablename__ = "champion_events"
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    at: datetime = _time()
    kind: str  # promote | rollback
    from_version: int | None = None
    to_version: int
    reason: str = ""


class PredictionRow(SQLModel, table=True):
    """A production row POSTed to ``/ingest/{model}/predictions`` (policy source kind ``api``)."""

    __tablename__ = "ingested_predictions"
    __table_args__ = (UniqueConstraint("model_id", "row_id"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    row_id: str  # the policy's `id` column, as text
    ts: datetime = _time()  # the policy's event-time column
    features: dict[str, Any] = _json()  # {feature: value}
    received_at: datetime = _time()


class LabelRow(SQLModel, table=True):
    """A label POSTed to ``/ingest/{model}/labels``; joins its prediction on ``row_id``."""

    __tablename__ = "ingested_labels"
    __table_args__ = (UniqueConstraint("model_id", "row_id"),)
    id: int | None = Field(default=None, primary_key=True)
    model_id: int = Field(foreign_key="models.id", index=True)
    row_id: str
    label: Any = Field(default=None, sa_column=Column(JSON, nullable=False))
    received_at: datetime = _time()
