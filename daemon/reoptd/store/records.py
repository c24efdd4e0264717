"""The records a ``Store`` takes and returns: frozen snapshots, never live database rows.

Field names are the columns of the SQL tables, so code that reads ``check.drift_share`` or
``version.sha256`` reads the same names whichever store produced the record. A change is made
through a store method (``update_check``, ``finish_run``, ``set_status``, ``promote``), which
returns the new record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ModelRecord:
    """A model known to the store; ``policy`` is the snapshot of its last policy."""

    name: str
    task: str
    created_at: datetime
    id: int | None = None
    champion_version: int | None = None
    champion_since: datetime | None = None
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionRecord:
    """One trained version and where its two artifacts (model, drift reference) live."""

    model_id: int
    version: int
    created_at: datetime
    id: int | None = None
    status: str = "candidate"  # candidate -> champion | rejected | pending | shadow | retired
    trigger: str = "manual"
    parent_version: int | None = None
    estimator: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # {"holdout": {...}, ...}
    artifact_path: str = ""
    sha256: str = ""
    size_bytes: int = 0
    reference_sha256: str = ""
    train_rows: int = 0
    train_start: datetime | None = None
    train_end: datetime | None = None


@dataclass(frozen=True)
class CheckRecord:
    """One monitoring check of a window."""

    at: datetime
    window_start: datetime
    window_end: datetime
    status: str  # ok | failed | skipped
    id: int | None = None
    model_id: int | None = None
    reason: str = ""
    champion_version: int | None = None
    rows: int = 0
    labelled_rows: int = 0
    drift_share: float | None = None
    dataset_drift: bool | None = None
    features: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class DecisionRecord:
    """What the policy decided after a check."""

    at: datetime
    fire: bool
    id: int | None = None
    model_id: int | None = None
    check_id: int | None = None
    triggers: list[str] = field(default_factory=list)
    reasons: str = ""


@dataclass(frozen=True)
class RunRecord:
    """One re-optimization run: its steps, timings and outcome (``queued`` until an executor
    claims it, ``running`` until finished). ``job`` holds what executing it needs (policy
    snapshot, data window end ``now``, champion version, trigger); ``lease_until`` (real time)
    is renewed by its executor; ``attempts`` counts the claims."""

    started_at: datetime
    trigger: str
    id: int | None = None
    model_id: int | None = None
    decision_id: int | None = None
    finished_at: datetime | None = None
    outcome: str = "running"  # promoted | rejected | pending | shadow | failed
    reason: str = ""
    champion_version: int | None = None
    challenger_version: int | None = None
    steps: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    owner: str | None = None  # the process that ran it (``ProcessRecord.owner``)
    job: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    lease_until: datetime | None = None


@dataclass(frozen=True)
class ProcessRecord:
    """A process using the store (the daemon, a CLI command): seen at ``seen_at`` (real time);
    a daemon also records its clock's reading then and how fast that clock runs (None: the
    system clock)."""

    owner: str
    host: str
    pid: int
    seen_at: datetime
    clock_at: datetime | None = None
    clock_speed: float | None = None


@dataclass(frozen=True)
class EventRecord:
    """A change of champion: a promotion or a rollback."""

    at: datetime
    kind: str  # promote | rollback
    to_version: int
    id: int | None = None
    model_id: int | None = None
    from_version: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class IngestedPrediction:
    """A production row posted to the API: its id, event time and feature values."""

    row_id: str
    ts: datetime
    features: dict[str, Any]


@dataclass(frozen=True)
class IngestedLabel:
    """A label posted to the API; it joins the prediction with the same ``row_id``."""

    row_id: str
    label: Any


@dataclass(frozen=True)
class IngestedRow:
    """A stored prediction with its label joined (None while none has arrived)."""

    row_id: str
    ts: datetime
    features: dict[str, Any]
    label: Any = None


@dataclass(frozen=True)
class ChampionSummary:
    """What ``/metrics`` exports per model at every scrape, read in one go."""

    name: str
    champion_version: int | None
    champion_since: datetime | None
    champion_size_bytes: int
    champion_latency_seconds: float | None
    versions: int
    pending: int
    promotions: int
    rollbacks: int
    #: the champion version's trigger (bootstrap, drift_share, metric, max_age, manual, ...)
    champion_trigger: str = ""
    #: why it is champion: the reason of the promotion or rollback that made it so
    champion_reason: str = ""


@dataclass(frozen=True)
class RunStats:
    """Runs of a model for the policy's guards: the last start, and the runs since a time."""

    last_started_at: datetime | None
    count: int
    seconds: float

    @classmethod
    def of(cls, runs: Iterable[RunRecord], since: datetime) -> RunStats:
        """The last run's start (any run), and the runs other than the bootstrap that started
        after ``since`` with the seconds they took."""
        runs = list(runs)
        recent = [r for r in runs if r.started_at > since and r.trigger != "bootstrap"]
        return cls(
            last_started_at=max((r.started_at for r in runs), default=None),
            count=len(recent),
            seconds=float(sum(r.seconds for r in recent)),
        )
