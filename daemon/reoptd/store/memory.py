"""``MemoryStore``: the whole state in one process's memory, behind one lock.

The default store of the loop's unit tests: same semantics as ``SqlStore`` (the contract suite
runs on both), no database. Records are copied in and out, so a caller can never change stored
state by mutating a dict it was given. Artifacts still go through an ``ArtifactStore``.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from reoptd.clock import utc
from reoptd.errors import DuplicateIds, ModelNotFound, ReoptdError, VersionNotFound
from reoptd.policy import CheckView, Policy
from reoptd.store.artifacts import ArtifactStore, open_artifacts
from reoptd.store.base import (
    ACTIVE,
    FORGET,
    INTERRUPTED,
    LEASE,
    MAX_ATTEMPTS,
    Listener,
    Store,
    alive,
    check_changes,
    check_view,
    expired,
    gone,
    new_owner,
    repeated,
    requeue_or_fail,
    wall_now,
)
from reoptd.store.records import (
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

R = TypeVar("R")


#: values shared, never copied: immutable
_ATOMS = frozenset({str, int, float, bool, type(None), datetime, date, timedelta})
#: each record class's field names
_NESTED: dict[type, tuple[str, ...]] = {}


def _copy(record: R) -> R:
    """A copy the caller may mutate without touching the stored state: a record (a frozen
    dataclass) with its dict and list fields copied through, or a plain value. Records hold
    JSON-like values (dicts, lists, strings, numbers, times), copied by ``_clone``, which is
    what ``copy.deepcopy`` did at a fraction of its cost: the loop reads the model's policy
    snapshot and recent checks every cycle."""
    kind = type(record)
    if not dataclasses.is_dataclass(kind):
        return _clone(record)
    names = _NESTED.get(kind)
    if names is None:
        names = _NESTED[kind] = tuple(f.name for f in dataclasses.fields(kind))
    values = {name: _clone(getattr(record, name)) for name in names}
    copied = object.__new__(kind)
    object.__setattr__(copied, "__dict__", values)  # a frozen record: as its __init__ does
    return copied


def _clone(value: Any) -> Any:
    """A deep copy of a JSON-like value; anything else by ``copy.deepcopy``."""
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {k: _clone(v) for k, v in value.items()}
    if kind is list:
        return [_clone(v) for v in value]
    return copy.deepcopy(value)


@dataclass
class _Model:
    record: ModelRecord
    versions: list[VersionRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    #: ``checks`` are in (at, id) order: each was added after the ones before it in time (as
    #: a daemon's are), so the recent ones are the last and a time range is found by bisection
    in_order: bool = True
    decisions: list[DecisionRecord] = field(default_factory=list)
    runs: list[RunRecord] = field(default_factory=list)
    #: row id -> (insertion order, prediction)
    predictions: dict[str, tuple[int, IngestedPrediction]] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)


class MemoryStore(Store):
    """A ``Store`` in memory; thread-safe. ``artifacts`` is a directory or an ``ArtifactStore``."""

    def __init__(self, artifacts: str | Path | ArtifactStore) -> None:
        self.url = "memory://"  # reoptd.store.MEMORY_URL
        self.artifacts = open_artifacts(artifacts)
        self.listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._models: dict[str, _Model] = {}
        self._ids = 0
        self._checks: dict[int, tuple[_Model, int]] = {}  # check id -> (model, list index)
        self.owner = new_owner()
        self._processes: dict[str, ProcessRecord] = {}
        self._locks: dict[str, str] = {}  # model -> owner holding its lock
        self._owners: dict[str, str] = {}  # model -> replica checking it

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _get(self, name: str) -> _Model:
        found = self._models.get(name)
        if found is None:
            raise ModelNotFound(name)
        return found

    # -- processes and locks --------------------------------------------------------------------

    def heartbeat(self, *, clock_at: datetime | None = None, speed: float | None = None) -> None:
        host, pid, _tag = self.owner.rsplit(":", 2)
        now = wall_now()
        with self._lock:
            known = self._processes.get(self.owner)
            if clock_at is None and known is not None:
                clock_at, speed = known.clock_at, known.clock_speed
            self._processes[self.owner] = ProcessRecord(
                owner=self.owner,
                host=host,
                pid=int(pid),
                seen_at=now,
                clock_at=None if clock_at is None else utc(clock_at),
                clock_speed=speed,
            )
            for owner, process in list(self._processes.items()):
                if process.seen_at < now - FORGET:
                    del self._processes[owner]

    def processes(self) -> list[ProcessRecord]:
        with self._lock:
            return sorted(self._processes.values(), key=lambda p: p.seen_at)

    def _try_lock(self, name: str) -> str | None:
        with self._lock:
            holder = self._locks.get(name)
            if (
                holder
                and holder != self.owner
                and alive(self._processes.get(holder), self.owner, wall_now())
            ):
                return holder
            self._locks[name] = self.owner
            return None

    def unlock_model(self, name: str) -> None:
        with self._lock:
            if self._locks.get(name) == self.owner:
                del self._locks[name]

    def own_model(self, name: str) -> str | None:
        with self._lock:
            holder = self._owners.get(name)
            if (
                holder
                and holder != self.owner
                and alive(self._processes.get(holder), self.owner, wall_now())
            ):
                return holder
            self._owners[name] = self.owner
            return None

    def disown_model(self, name: str) -> None:
        with self._lock:
            if self._owners.get(name) == self.owner:
                del self._owners[name]

    def model_owners(self) -> dict[str, str]:
        with self._lock:
            return dict(self._owners)

    @property
    def display_url(self) -> str:
        return self.url

    @property
    def optuna_storage(self) -> str | None:
        return None

    def ping(self) -> None:
        return None

    # -- models -------------------------------------------------------------------------------

    def ensure_model(self, policy: Policy, at: datetime) -> ModelRecord:
        snapshot = policy.model_dump(mode="json", by_alias=True)
        with self._lock:
            found = self._models.get(policy.model)
            if found is None:
                record = ModelRecord(
                    id=self._next_id(),
                    name=policy.model,
                    task=policy.task,
                    created_at=utc(at),
                    policy=snapshot,
                )
                self._models[policy.model] = _Model(record)
            else:
                found.record = replace(found.record, task=policy.task, policy=snapshot)
                record = found.record
            return _copy(record)

    def model(self, name: str) -> ModelRecord:
        with self._lock:
            return _copy(self._get(name).record)

    def models(self) -> list[ModelRecord]:
        with self._lock:
            return [_copy(self._models[n].record) for n in sorted(self._models)]

    # -- versions -----------------------------------------------------------------------------

    def versions(self, name: str) -> list[VersionRecord]:
        with self._lock:
            return [_copy(v) for v in self._get(name).versions]

    def version(self, name: str, version: int) -> VersionRecord:
        with self._lock:
            return _copy(self._version(name, version))

    def champion(self, name: str) -> VersionRecord | None:
        """As ``Store.champion``, without copying the model's record (its policy snapshot) on
        the way: the loop asks for the champion several times a cycle."""
        with self._lock:
            version = self._get(name).record.champion_version
            return None if version is None else _copy(self._version(name, version))

    def _version(self, name: str, version: int) -> VersionRecord:
        for v in self._get(name).versions:
            if v.version == version:
                return v
        raise VersionNotFound(name, version)

    def _insert_version(self, name: str, *, at: datetime, **fields: Any) -> VersionRecord:
        with self._lock:
            model = self._get(name)
            assert model.record.id is not None
            latest = max((v.version for v in model.versions), default=0)
            for key in ("train_start", "train_end"):
                if fields.get(key) is not None:
                    fields[key] = utc(fields[key])
            record = VersionRecord(
                id=self._next_id(),
                model_id=model.record.id,
                version=latest + 1,
                created_at=utc(at),
                **_copy(fields),
            )
            model.versions.append(record)
            return _copy(record)

    def set_status(self, name: str, version: int, status: str, **metrics: Any) -> VersionRecord:
        with self._lock:
            model = self._get(name)
            old = self._version(name, version)
            new = replace(old, status=status, metrics={**old.metrics, **_copy(metrics)})
            model.versions[model.versions.index(old)] = new
            return _copy(new)

    # -- champion changes ---------------------------------------------------------------------

    def _swap(
        self, name: str, version: int | None, *, at: datetime, reason: str, kind: str
    ) -> EventRecord:
        with self._lock:
            model = self._get(name)
            previous = model.record.champion_version
            if version is None:
                version = self._rollback_target(name, previous, model.events)
            target = self._version(name, version)
            self._verify(target)
            if previous == version:
                raise ReoptdError(f"version {version} of {name!r} is already the champion")
            for i, v in enumerate(model.versions):
                if v.version == version:
                    model.versions[i] = replace(v, status="champion")
                elif v.version == previous:
                    model.versions[i] = replace(v, status="retired")
            model.record = replace(model.record, champion_version=version, champion_since=utc(at))
            event = EventRecord(
                id=self._next_id(),
                model_id=model.record.id,
                at=utc(at),
                kind=kind,
                from_version=previous,
                to_version=version,
                reason=reason,
            )
            model.events.append(event)
            return _copy(event)

    def events(self, name: str) -> list[EventRecord]:
        with self._lock:
            return [_copy(e) for e in self._get(name).events]

    # -- checks -------------------------------------------------------------------------------

    def add_check(
        self,
        name: str,
        *,
        at: datetime,
        window_start: datetime,
        window_end: datetime,
        status: str,
        reason: str = "",
        champion_version: int | None = None,
        rows: int = 0,
        labelled_rows: int = 0,
        drift_share: float | None = None,
        dataset_drift: bool | None = None,
        features: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        signals: dict[str, Any] | None = None,
        seconds: float = 0.0,
    ) -> CheckRecord:
        with self._lock:
            model = self._get(name)
            record = CheckRecord(
                id=self._next_id(),
                model_id=model.record.id,
                at=utc(at),
                window_start=utc(window_start),
                window_end=utc(window_end),
                status=status,
                reason=reason,
                champion_version=champion_version,
                rows=rows,
                labelled_rows=labelled_rows,
                drift_share=drift_share,
                dataset_drift=dataset_drift,
                features=_copy(features or {}),
                metrics=_copy(metrics or {}),
                signals=_copy(signals or {}),
                seconds=seconds,
            )
            checks = model.checks
            if checks and (record.at, record.id) < (checks[-1].at, checks[-1].id or 0):
                model.in_order = False
            assert record.id is not None
            self._checks[record.id] = (model, len(checks))
            checks.append(record)
            return _copy(record)

    def update_check(self, check_id: int, **changes: Any) -> CheckRecord:
        check_changes(check_id, changes)
        with self._lock:
            found = self._checks.get(check_id)
            if found is None:
                raise ReoptdError(f"no check with id {check_id}")
            model, i = found
            model.checks[i] = replace(model.checks[i], **_copy(changes))
            return _copy(model.checks[i])

    def checks(self, name: str, limit: int = 50) -> list[CheckRecord]:
        with self._lock:
            return [_copy(c) for c in self._recent(name, limit)]

    def _recent(self, name: str, limit: int) -> list[CheckRecord]:
        model = self._get(name)
        ordered = model.checks
        if not model.in_order:
            ordered = sorted(ordered, key=lambda c: (c.at, c.id or 0))
        return ordered[-limit:] if limit > 0 else []

    def history(self, name: str, limit: int = 50) -> list[CheckView]:
        """As ``Store.history``, the views built from the stored checks without copying them
        first: a view shares nothing mutable with its check (``check_view``)."""
        with self._lock:
            return [check_view(c) for c in self._recent(name, limit)]

    def waiting_checks(self, name: str, since: datetime, until: datetime) -> list[CheckRecord]:
        with self._lock:
            model = self._get(name)
            checks: Sequence[CheckRecord] = model.checks
            if model.in_order:  # the checks from ``since`` on; a daemon's all lie before now
                first = bisect.bisect_left(checks, since, key=lambda c: c.at)
                last = bisect.bisect_left(checks, until, lo=first, key=lambda c: c.at)
                checks = checks[first:last]
            return [
                _copy(c)
                for c in checks
                if c.status == "ok" and since <= c.at < until and c.labelled_rows < c.rows
            ]

    # -- decisions ----------------------------------------------------------------------------

    def add_decision(
        self,
        name: str,
        *,
        check_id: int | None,
        at: datetime,
        fire: bool,
        triggers: list[str],
        reasons: str,
    ) -> DecisionRecord:
        with self._lock:
            model = self._get(name)
            record = DecisionRecord(
                id=self._next_id(),
                model_id=model.record.id,
                check_id=check_id,
                at=utc(at),
                fire=fire,
                triggers=list(triggers),
                reasons=reasons,
            )
            model.decisions.append(record)
            return _copy(record)

    def decisions(self, name: str, limit: int | None = None) -> list[DecisionRecord]:
        with self._lock:
            found = self._get(name).decisions
            if limit is not None:
                found = found[-limit:] if limit > 0 else []
            return [_copy(d) for d in found]

    # -- runs ---------------------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        *,
        started_at: datetime,
        trigger: str,
        champion_version: int | None = None,
        decision_id: int | None = None,
    ) -> RunRecord:
        with self._lock:
            model = self._get(name)
            record = RunRecord(
                id=self._next_id(),
                model_id=model.record.id,
                decision_id=decision_id,
                started_at=utc(started_at),
                trigger=trigger,
                champion_version=champion_version,
                owner=self.owner,
            )
            model.runs.append(record)
            return _copy(record)

    def enqueue_run(
        self,
        name: str,
        *,
        at: datetime,
        trigger: str,
        job: dict[str, Any],
        champion_version: int | None = None,
        decision_id: int | None = None,
    ) -> RunRecord:
        with self._lock:
            model = self._get(name)
            active = next((r for r in model.runs if r.outcome in ACTIVE), None)
            if active is not None:
                return _copy(active)
            record = RunRecord(
                id=self._next_id(),
                model_id=model.record.id,
                decision_id=decision_id,
                started_at=utc(at),
                trigger=trigger,
                champion_version=champion_version,
                outcome="queued",
                job=_copy(job),
            )
            model.runs.append(record)
            return _copy(record)

    def claim_run(
        self,
        *,
        models: Sequence[str] | None = None,
        run_id: int | None = None,
        lease: timedelta = LEASE,
    ) -> RunRecord | None:
        with self._lock:
            queued = [
                (i, model, run)
                for name, model in self._models.items()
                if models is None or name in models
                for i, run in enumerate(model.runs)
                if run.outcome == "queued" and (run_id is None or run.id == run_id)
            ]
            if not queued:
                return None
            i, model, run = min(queued, key=lambda q: q[2].id or 0)
            model.runs[i] = replace(
                run,
                outcome="running",
                owner=self.owner,
                attempts=run.attempts + 1,
                lease_until=wall_now() + lease,
            )
            return _copy(model.runs[i])

    def renew_run(self, run_id: int, *, lease: timedelta = LEASE) -> bool:
        with self._lock:
            for model in self._models.values():
                for i, run in enumerate(model.runs):
                    if run.id == run_id:
                        if run.outcome != "running" or run.owner != self.owner:
                            return False
                        model.runs[i] = replace(run, lease_until=wall_now() + lease)
                        return True
        return False

    def expire_runs(self, *, max_attempts: int = MAX_ATTEMPTS) -> list[RunRecord]:
        now = wall_now()
        out = []
        with self._lock:
            for model in self._models.values():
                for i, run in enumerate(model.runs):
                    if run.outcome != "running" or not expired(
                        run.owner, run.lease_until, self.owner, self._processes, now
                    ):
                        continue
                    outcome, reason = requeue_or_fail(run.attempts, max_attempts, run.owner)
                    model.runs[i] = replace(
                        run,
                        outcome=outcome,
                        reason=reason,
                        lease_until=None,
                        finished_at=None if outcome == "queued" else run.started_at,
                    )
                    out.append(_copy(model.runs[i]))
        return out

    def finish_run(
        self,
        run_id: int,
        *,
        finished_at: datetime,
        outcome: str,
        reason: str = "",
        challenger_version: int | None = None,
        steps: dict[str, Any] | None = None,
        seconds: float = 0.0,
    ) -> RunRecord:
        with self._lock:
            for model in self._models.values():
                for i, run in enumerate(model.runs):
                    if run.id == run_id:
                        model.runs[i] = replace(
                            run,
                            finished_at=utc(finished_at),
                            lease_until=None,
                            outcome=outcome,
                            reason=reason,
                            challenger_version=challenger_version,
                            steps=_copy(steps or {}),
                            seconds=seconds,
                        )
                        return _copy(model.runs[i])
        raise ReoptdError(f"no run with id {run_id}")

    def runs(self, name: str) -> list[RunRecord]:
        with self._lock:
            return [_copy(r) for r in self._get(name).runs]

    def run_stats(self, name: str, since: datetime) -> RunStats:
        """As ``Store.run_stats``, from the stored runs without copying them first (each holds
        its job's policy snapshot): the loop asks for them at every decision."""
        with self._lock:
            return RunStats.of(self._get(name).runs, since)

    def close_interrupted_runs(self, name: str) -> int:
        with self._lock:
            model = self._models.get(name)
            if model is None:
                return 0
            closed = 0
            for i, run in enumerate(model.runs):
                if run.outcome == "running" and gone(run.owner, self.owner, self._processes):
                    model.runs[i] = replace(run, outcome="failed", reason=INTERRUPTED)
                    closed += 1
            return closed

    # -- ingested rows ------------------------------------------------------------------------

    def add_predictions(
        self, name: str, rows: Sequence[IngestedPrediction], *, at: datetime
    ) -> int:
        with self._lock:
            model = self._get(name)
            _refuse_known(name, [r.row_id for r in rows], model.predictions)
            for row in rows:
                model.predictions[row.row_id] = (
                    self._next_id(),
                    IngestedPrediction(row.row_id, utc(row.ts), _copy(row.features)),
                )
            return len(rows)

    def add_labels(self, name: str, rows: Sequence[IngestedLabel], *, at: datetime) -> int:
        with self._lock:
            model = self._get(name)
            _refuse_known(name, [r.row_id for r in rows], model.labels)
            for row in rows:
                model.labels[row.row_id] = _copy(row.label)
            return len(rows)

    def count_ingested(self, name: str) -> tuple[int, int]:
        with self._lock:
            model = self._get(name)
            return len(model.predictions), len(model.labels)

    def ingested(self, name: str, start: datetime, end: datetime) -> list[IngestedRow]:
        start, end = utc(start), utc(end)
        with self._lock:
            model = self._get(name)
            found = sorted(
                (p.ts, seq, p) for seq, p in model.predictions.values() if start <= p.ts < end
            )
            return [
                IngestedRow(p.row_id, p.ts, _copy(p.features), _copy(model.labels.get(p.row_id)))
                for _ts, _seq, p in found
            ]


def _refuse_known(name: str, ids: list[str], stored: dict[str, Any]) -> None:
    known = [i for i in ids if i in stored] or repeated(ids)
    if known:
        raise DuplicateIds(name, list(dict.fromkeys(known)))
