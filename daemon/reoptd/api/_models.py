"""Request and response bodies of the HTTP API: what the OpenAPI schema publishes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

#: version numbers are stored as 32-bit integers on every database
MAX_VERSION = 2**31 - 1


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    ready: bool
    database: bool = Field(description="the database answered a trivial query")
    scheduler: bool | None = Field(
        description="the scheduler is running (null when the API runs without the daemon)"
    )
    models: list[str] | None = Field(
        default=None,
        description="the models this replica checks (null when the API runs without the daemon)",
    )
    detail: str = ""


class Error(BaseModel):
    detail: str


class Problem(BaseModel):
    row: int = Field(description="0-based position of the row in the batch")
    column: str | None = Field(description="the offending column, null for the row as a whole")
    error: str


class BatchError(BaseModel):
    detail: str
    problems: list[Problem]


class ModelSummary(BaseModel):
    name: str
    task: str
    champion_version: int | None
    champion_since: datetime | None
    versions: int
    pending: list[int] = Field(description="versions waiting for approval")
    source: str | None = Field(description="data.production.kind of its policy, if loaded")


class Event(BaseModel):
    model: str
    kind: Literal["promote", "rollback"]
    from_version: int | None
    to_version: int
    reason: str
    at: datetime


class ModelDetail(ModelSummary):
    mode: str | None = Field(description="promote.mode of its policy, if loaded")
    events: list[Event]


class Version(BaseModel):
    version: int
    status: str
    created_at: datetime
    trigger: str
    parent_version: int | None
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    sha256: str
    size_bytes: int
    train_rows: int
    train_start: datetime | None
    train_end: datetime | None


class Check(BaseModel):
    at: datetime
    status: str
    reason: str
    champion_version: int | None
    rows: int
    labelled_rows: int
    drift_share: float | None
    dataset_drift: bool | None
    features: dict[str, Any]
    metrics: dict[str, Any]
    signals: dict[str, Any]
    seconds: float


class PromoteRequest(BaseModel):
    version: int = Field(ge=1, le=MAX_VERSION)
    reason: str = Field("promoted via the API", max_length=500)


class RollbackRequest(BaseModel):
    reason: str = Field("rolled back via the API", max_length=500)


class ApproveRequest(BaseModel):
    version: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="default: the newest pending version"
    )
    reason: str = Field("approved via the API", max_length=500)


class Ingested(BaseModel):
    model: str
    kind: Literal["predictions", "labels"]
    accepted: int
