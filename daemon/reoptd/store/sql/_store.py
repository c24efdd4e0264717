"""``SqlStore``: the ``Store`` on SQLAlchemy (SQLModel tables, Alembic migrations); SQLite by
default, PostgreSQL in production. The only module of reoptd that speaks SQL.

Every read returns frozen records built from the rows inside the session; no row leaves it. A
driver error becomes ``StoreUnavailable`` naming the database (password hidden). A swap of
champions is one transaction that first locks the model's row (``SELECT … FOR UPDATE`` on
PostgreSQL; on SQLite ``BEGIN IMMEDIATE``, the database's write lock, waiting up to the busy
timeout), so concurrent promotions and rollbacks of one model are serialised. pysqlite's own
transaction handling is bypassed (``isolation_level=None`` and an explicit ``BEGIN``), so a
transaction on SQLite really spans every statement in it, DDL included.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import case, delete, event, func, text, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import aliased
from sqlmodel import Session, SQLModel, and_, col, create_engine, select

from reoptd.clock import utc
from reoptd.errors import (
    DuplicateIds,
    ModelNotFound,
    ReoptdError,
    StoreUnavailable,
    VersionNotFound,
)
from reoptd.policy import Policy
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
    expired,
    gone,
    new_owner,
    repeated,
    requeue_or_fail,
    wall_now,
)
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
from reoptd.store.sql._migrate import create_optuna_tables, upgrade
from reoptd.store.sql._tables import (
    CheckRow,
    DecisionRow,
    EventRow,
    LabelRow,
    LockRow,
    ModelRow,
    OwnerRow,
    PredictionRow,
    ProcessRow,
    RunRow,
    VersionRow,
)

log = logging.getLogger("reoptd.store.sql")

R = TypeVar("R")

#: execution option: on SQLite, begin the transaction with ``BEGIN IMMEDIATE`` (the write lock)
IMMEDIATE = "reoptd_immediate"

#: ids per ``IN (…)`` list when looking up ingested ids
CHUNK = 500


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and a busy timeout so the CLI can read while the
    daemon writes."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling is off: it would commit before DDL and begin
            # only before DML, so neither migrations nor read-then-write swaps were atomic.
            # SQLAlchemy's "begin" event below emits the BEGIN itself.
            conn.isolation_level = None
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # ``immediate``: take the write lock at BEGIN (waiting up to the busy timeout), for
            # transactions that read and then write on what they read (swaps, locks, migrations)
            immediate = conn.get_execution_options().get(IMMEDIATE)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _record(cls: type[R], row: SQLModel) -> R:
    """The frozen record of ``row`` (same field names)."""
    return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})  # type: ignore[arg-type]  # cls is one of the record dataclasses


class SqlStore(Store):
    """A ``Store`` in the database at ``url`` (any SQLAlchemy URL), artifacts in ``artifacts``
    (a directory or an ``ArtifactStore``). The schema is migrated to the newest on open."""

    def __init__(self, url: str, artifacts: str | Path | ArtifactStore) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.artifacts = open_artifacts(artifacts)
        self.listeners: list[Listener] = []
        self.owner = new_owner()
        self._sqlite = self.engine.dialect.name == "sqlite"
        self._immediate = self.engine.execution_options(**{IMMEDIATE: True})
        self._optuna_ready = False
        self._optuna_lock = threading.Lock()
        try:
            upgrade(self.engine)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            orig = getattr(exc, "orig", None) or exc
            raise StoreUnavailable(
                f"cannot reach the database {self.display_url}: {orig}"
            ) from None

    @property
    def display_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    @property
    def optuna_storage(self) -> str | None:
        """The database's URL, Optuna's tables made in it (once per store, serialized across
        processes: ``create_optuna_tables``) before any study is opened there."""
        if not self._optuna_ready:
            with self._optuna_lock:
                if not self._optuna_ready:
                    try:
                        create_optuna_tables(self.engine, self.url)
                    except SQLAlchemyError as exc:
                        orig = getattr(exc, "orig", None) or exc
                        raise StoreUnavailable(
                            f"database {self.display_url}: cannot create Optuna's tables: {orig}"
                        ) from None
                    self._optuna_ready = True
        return self.url

    def close(self) -> None:
        self.engine.dispose()

    def ping(self) -> None:
        with self._session() as s:
            s.connection().execute(text("SELECT 1"))

    @contextmanager
    def _session(self, *, immediate: bool = False) -> Iterator[Session]:
        """A session; ``immediate`` for every session that writes: on SQLite its transaction
        holds the write lock from ``BEGIN`` (waiting up to the busy timeout), since a deferred
        transaction that read first cannot write once another process committed (WAL's
        SQLITE_BUSY_SNAPSHOT, not retried). PostgreSQL ignores it (row locks as it goes)."""
        bind = self._immediate if immediate else self.engine
        try:
            with Session(bind, expire_on_commit=False) as session:
                yield session
        except SQLAlchemyError as exc:
            orig = getattr(exc, "orig", None) or exc
            raise StoreUnavailable(
                f"database {self.display_url}: {type(exc).__name__}: {orig}"
            ) from exc

    @staticmethod
    def _model_row(s: Session, name: str) -> ModelRow:
        row = s.exec(select(ModelRow).where(ModelRow.name == name)).first()
        if row is None:
            raise ModelNotFound(name)
        return row

    def _model_id(self, s: Session, name: str) -> int:
        model_id = s.exec(select(ModelRow.id).where(ModelRow.name == name)).first()
        if model_id is None:
            raise ModelNotFound(name)
        return model_id

    # -- processes and locks ------------------------------------------------------------------

    def heartbeat(self, *, clock_at: datetime | None = None, speed: float | None = None) -> None:
        host, pid, _tag = self.owner.rsplit(":", 2)
        now = wall_now()
        for attempt in range(2):
            try:
                with self._session(immediate=True) as s:
                    row = s.get(ProcessRow, self.owner)
                    if row is None:
                        row = ProcessRow(owner=self.owner, host=host, pid=int(pid), seen_at=now)
                    row.seen_at = now
                    if clock_at is not None:
                        row.clock_at = clock_at
                        row.clock_speed = speed
                    s.add(row)
                    s.exec(delete(ProcessRow).where(col(ProcessRow.seen_at) < now - FORGET))
                    s.commit()
                return
            except StoreUnavailable as exc:
                # this process's first heartbeat, written by two of its threads at once (a run's
                # lease renewal beside the service's beat; PostgreSQL does not serialise them as
                # SQLite's write lock does): the other made the row, the second attempt updates it
                if attempt or not isinstance(exc.__cause__, IntegrityError):
                    raise

    def processes(self) -> list[ProcessRecord]:
        with self._session() as s:
            rows = s.exec(select(ProcessRow).order_by(col(ProcessRow.seen_at)))
            return [_record(ProcessRecord, r) for r in rows]

    def _try_lock(self, name: str) -> str | None:
        with self._session(immediate=True) as s:  # the lock's row exists before anyone locks it
            if s.get(LockRow, name) is None:
                s.add(LockRow(model=name, owner=""))
                try:
                    s.commit()
                except IntegrityError:  # another process made it first
                    s.rollback()
        with self._session(immediate=True) as s:
            lock = s.exec(select(LockRow).where(LockRow.model == name).with_for_update()).one()
            if lock.owner and lock.owner != self.owner:
                holder = s.get(ProcessRow, lock.owner)
                if alive(
                    None if holder is None else _record(ProcessRecord, holder),
                    self.owner,
                    wall_now(),
                ):
                    return lock.owner
            lock.owner = self.owner
            s.add(lock)
            s.commit()
        return None

    def unlock_model(self, name: str) -> None:
        with self._session(immediate=True) as s:
            s.exec(
                update(LockRow)
                .where(col(LockRow.model) == name, col(LockRow.owner) == self.owner)
                .values(owner="")
            )
            s.commit()

    def own_model(self, name: str) -> str | None:
        with self._session(immediate=True) as s:  # the row exists before anyone takes it
            if s.get(OwnerRow, name) is None:
                s.add(OwnerRow(model=name, owner=""))
                try:
                    s.commit()
                except IntegrityError:  # another replica made it first
                    s.rollback()
        with self._session(immediate=True) as s:
            row = s.exec(select(OwnerRow).where(OwnerRow.model == name).with_for_update()).one()
            if row.owner and row.owner != self.owner:
                holder = s.get(ProcessRow, row.owner)
                if alive(
                    None if holder is None else _record(ProcessRecord, holder),
                    self.owner,
                    wall_now(),
                ):
                    return row.owner
            if row.owner != self.owner:
                row.owner = self.owner
                s.add(row)
                s.commit()
        return None

    def disown_model(self, name: str) -> None:
        with self._session(immediate=True) as s:
            s.exec(
                update(OwnerRow)
                .where(col(OwnerRow.model) == name, col(OwnerRow.owner) == self.owner)
                .values(owner="")
            )
            s.commit()

    def model_owners(self) -> dict[str, str]:
        with self._session() as s:
            return {r.model: r.owner for r in s.exec(select(OwnerRow)) if r.owner}

    # -- models -------------------------------------------------------------------------------

    def ensure_model(self, policy: Policy, at: datetime) -> ModelRecord:
        snapshot = policy.model_dump(mode="json", by_alias=True)
        with self._session(immediate=True) as s:
            row = s.exec(select(ModelRow).where(ModelRow.name == policy.model)).first()
            if row is None:
                row = ModelRow(name=policy.model, task=policy.task, created_at=at, policy=snapshot)
            else:
                row.policy = snapshot
                row.task = policy.task
            s.add(row)
            s.commit()
            s.refresh(row)
            return _record(ModelRecord, row)

    def model(self, name: str) -> ModelRecord:
        with self._session() as s:
            return _record(ModelRecord, self._model_row(s, name))

    def models(self) -> list[ModelRecord]:
        with self._session() as s:
            return [
                _record(ModelRecord, r) for r in s.exec(select(ModelRow).order_by(ModelRow.name))
            ]

    # -- versions -----------------------------------------------------------------------------

    def versions(self, name: str) -> list[VersionRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            query = select(VersionRow).where(VersionRow.model_id == model_id)
            return [
                _record(VersionRecord, r) for r in s.exec(query.order_by(col(VersionRow.version)))
            ]

    def version(self, name: str, version: int) -> VersionRecord:
        with self._session() as s:
            return _record(VersionRecord, self._version_row(s, name, version))

    def _version_row(self, s: Session, name: str, version: int) -> VersionRow:
        model_id = self._model_id(s, name)
        row = s.exec(
            select(VersionRow).where(VersionRow.model_id == model_id, VersionRow.version == version)
        ).first()
        if row is None:
            raise VersionNotFound(name, version)
        return row

    def _insert_version(self, name: str, *, at: datetime, **fields: Any) -> VersionRecord:
        with self._session(immediate=True) as s:
            model_id = self._model_id(s, name)
            latest = s.exec(
                select(func.max(VersionRow.version)).where(VersionRow.model_id == model_id)
            ).one()
            row = VersionRow(model_id=model_id, version=(latest or 0) + 1, created_at=at, **fields)
            s.add(row)
            s.commit()
            s.refresh(row)
            return _record(VersionRecord, row)

    def set_status(self, name: str, version: int, status: str, **metrics: Any) -> VersionRecord:
        with self._session(immediate=True) as s:
            row = self._version_row(s, name, version)
            row.status = status
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            s.add(row)
            s.commit()
            s.refresh(row)
            return _record(VersionRecord, row)

    # -- champion changes ---------------------------------------------------------------------

    def _swap(
        self, name: str, version: int | None, *, at: datetime, reason: str, kind: str
    ) -> EventRecord:
        # SQLite: BEGIN IMMEDIATE takes the database's write lock, standing in for the row lock
        with self._session(immediate=True) as s:
            model = s.exec(select(ModelRow).where(ModelRow.name == name).with_for_update()).first()
            if model is None:
                raise ModelNotFound(name)
            previous = model.champion_version
            if version is None:
                history = s.exec(
                    select(EventRow).where(EventRow.model_id == model.id).order_by(col(EventRow.id))
                ).all()
                version = self._rollback_target(name, previous, history)
            target = self._version_row(s, name, version)
            self._verify(_record(VersionRecord, target))  # ArtifactError: nothing was changed
            if previous == version:
                raise ReoptdError(f"version {version} of {name!r} is already the champion")
            for row in s.exec(select(VersionRow).where(VersionRow.model_id == model.id)):
                if row.version == version:
                    row.status = "champion"
                elif row.version == previous:
                    row.status = "retired"
                else:
                    continue
                s.add(row)
            model.champion_version = version
            model.champion_since = at
            s.add(model)
            assert model.id is not None
            event_row = EventRow(
                model_id=model.id,
                at=at,
                kind=kind,
                from_version=previous,
                to_version=version,
                reason=reason,
            )
            s.add(event_row)
            s.commit()
            s.refresh(event_row)
            return _record(EventRecord, event_row)

    def events(self, name: str) -> list[EventRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            query = select(EventRow).where(EventRow.model_id == model_id).order_by(col(EventRow.id))
            return [_record(EventRecord, r) for r in s.exec(query)]

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
        with self._session(immediate=True) as s:
            row = CheckRow(
                model_id=self._model_id(s, name),
                at=at,
                window_start=window_start,
                window_end=window_end,
                status=status,
                reason=reason,
                champion_version=champion_version,
                rows=rows,
                labelled_rows=labelled_rows,
                drift_share=drift_share,
                dataset_drift=dataset_drift,
                features=features or {},
                metrics=metrics or {},
                signals=signals or {},
                seconds=seconds,
            )
            return self._commit(s, row, CheckRecord)

    def update_check(self, check_id: int, **changes: Any) -> CheckRecord:
        check_changes(check_id, changes)
        with self._session(immediate=True) as s:
            row = s.get(CheckRow, check_id)
            if row is None:
                raise ReoptdError(f"no check with id {check_id}")
            for key, value in changes.items():
                setattr(row, key, value)
            return self._commit(s, row, CheckRecord)

    def checks(self, name: str, limit: int = 50) -> list[CheckRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            rows = s.exec(
                select(CheckRow)
                .where(CheckRow.model_id == model_id)
                .order_by(col(CheckRow.at).desc(), col(CheckRow.id).desc())
                .limit(limit)
            )
            return [_record(CheckRecord, r) for r in reversed(list(rows))]

    def waiting_checks(self, name: str, since: datetime, until: datetime) -> list[CheckRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            rows = s.exec(
                select(CheckRow).where(
                    CheckRow.model_id == model_id,
                    CheckRow.status == "ok",
                    col(CheckRow.at) >= since,
                    col(CheckRow.at) < until,
                    col(CheckRow.labelled_rows) < col(CheckRow.rows),
                )
            )
            return [_record(CheckRecord, r) for r in rows]

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
        with self._session(immediate=True) as s:
            row = DecisionRow(
                model_id=self._model_id(s, name),
                check_id=check_id,
                at=at,
                fire=fire,
                triggers=list(triggers),
                reasons=reasons,
            )
            return self._commit(s, row, DecisionRecord)

    def decisions(self, name: str, limit: int | None = None) -> list[DecisionRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            query = (
                select(DecisionRow)
                .where(DecisionRow.model_id == model_id)
                .order_by(col(DecisionRow.id).desc())
            )
            if limit is not None:
                query = query.limit(limit)
            return [_record(DecisionRecord, r) for r in reversed(list(s.exec(query)))]

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
        with self._session(immediate=True) as s:
            row = RunRow(
                model_id=self._model_id(s, name),
                decision_id=decision_id,
                started_at=started_at,
                trigger=trigger,
                champion_version=champion_version,
                owner=self.owner,
            )
            return self._commit(s, row, RunRecord)

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
        with self._session(immediate=True) as s:
            # the model's row lock serialises the enqueues of one model (SQLite: BEGIN IMMEDIATE)
            model = s.exec(select(ModelRow).where(ModelRow.name == name).with_for_update()).first()
            if model is None or model.id is None:
                raise ModelNotFound(name)
            active = s.exec(
                select(RunRow)
                .where(RunRow.model_id == model.id, col(RunRow.outcome).in_(ACTIVE))
                .order_by(col(RunRow.id))
            ).first()
            if active is not None:
                return _record(RunRecord, active)
            row = RunRow(
                model_id=model.id,
                decision_id=decision_id,
                started_at=at,
                trigger=trigger,
                champion_version=champion_version,
                outcome="queued",
                job=job,
                attempts=0,
            )
            return self._commit(s, row, RunRecord)

    def claim_run(
        self,
        *,
        models: Sequence[str] | None = None,
        run_id: int | None = None,
        lease: timedelta = LEASE,
    ) -> RunRecord | None:
        query = select(RunRow).where(RunRow.outcome == "queued")
        if run_id is not None:
            query = query.where(RunRow.id == run_id)
        if models is not None:
            named = select(ModelRow.id).where(col(ModelRow.name).in_(list(models)))
            query = query.where(col(RunRow.model_id).in_(named))
        # PostgreSQL: a queued run another claimant has locked is skipped, not waited for;
        # SQLite: BEGIN IMMEDIATE serialises the claims (FOR UPDATE is not emitted)
        query = query.order_by(col(RunRow.id)).limit(1).with_for_update(skip_locked=True)
        with self._session(immediate=True) as s:
            row = s.exec(query).first()
            if row is None:
                return None
            row.outcome = "running"
            row.owner = self.owner
            row.attempts += 1
            row.lease_until = wall_now() + lease
            return self._commit(s, row, RunRecord)

    def renew_run(self, run_id: int, *, lease: timedelta = LEASE) -> bool:
        with self._session(immediate=True) as s:
            renewed = s.exec(
                update(RunRow)
                .where(
                    col(RunRow.id) == run_id,
                    col(RunRow.outcome) == "running",
                    col(RunRow.owner) == self.owner,
                )
                .values(lease_until=wall_now() + lease)
            )
            s.commit()
            return bool(renewed.rowcount)

    def expire_runs(self, *, max_attempts: int = MAX_ATTEMPTS) -> list[RunRecord]:
        now = wall_now()
        with self._session(immediate=True) as s:
            running = list(
                s.exec(
                    select(RunRow)
                    .where(RunRow.outcome == "running", col(RunRow.lease_until).is_not(None))
                    .with_for_update(skip_locked=True)
                )
            )
            processes = {p.owner: _record(ProcessRecord, p) for p in s.exec(select(ProcessRow))}
            out = []
            for row in running:
                if not expired(row.owner, row.lease_until, self.owner, processes, now):
                    continue
                row.outcome, row.reason = requeue_or_fail(row.attempts, max_attempts, row.owner)
                row.lease_until = None
                if row.outcome == "failed":
                    row.finished_at = row.started_at
                s.add(row)
                out.append(row)
            s.commit()
            return [_record(RunRecord, r) for r in out]

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
        with self._session(immediate=True) as s:
            row = s.get(RunRow, run_id)
            if row is None:
                raise ReoptdError(f"no run with id {run_id}")
            row.finished_at = finished_at
            row.lease_until = None
            row.outcome = outcome
            row.reason = reason
            row.challenger_version = challenger_version
            row.steps = steps or {}
            row.seconds = seconds
            return self._commit(s, row, RunRecord)

    def runs(self, name: str) -> list[RunRecord]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            query = select(RunRow).where(RunRow.model_id == model_id).order_by(col(RunRow.id))
            return [_record(RunRecord, r) for r in s.exec(query)]

    def close_interrupted_runs(self, name: str) -> int:
        with self._session(immediate=True) as s:
            model_id = s.exec(select(ModelRow.id).where(ModelRow.name == name)).first()
            if model_id is None:
                return 0
            running = list(
                s.exec(
                    select(RunRow).where(RunRow.model_id == model_id, RunRow.outcome == "running")
                )
            )
            processes = {p.owner: _record(ProcessRecord, p) for p in s.exec(select(ProcessRow))}
            stale = [r for r in running if gone(r.owner, self.owner, processes)]
            for run in stale:
                run.outcome = "failed"
                run.reason = INTERRUPTED
                s.add(run)
            s.commit()
        return len(stale)

    def run_stats(self, name: str, since: datetime) -> RunStats:
        with self._session() as s:
            model_id = self._model_id(s, name)
            last = s.exec(
                select(func.max(RunRow.started_at)).where(RunRow.model_id == model_id)
            ).one()
            count, seconds = s.exec(
                select(func.count(), func.coalesce(func.sum(RunRow.seconds), 0.0))
                .select_from(RunRow)
                .where(
                    RunRow.model_id == model_id,
                    col(RunRow.started_at) > since,
                    RunRow.trigger != "bootstrap",
                )
            ).one()
        return RunStats(
            last_started_at=None if last is None else utc(last),
            count=int(count),
            seconds=float(seconds),
        )

    # -- ingested rows ------------------------------------------------------------------------

    def add_predictions(
        self, name: str, rows: Sequence[IngestedPrediction], *, at: datetime
    ) -> int:
        def make(model_id: int, r: IngestedPrediction) -> PredictionRow:
            return PredictionRow(
                model_id=model_id, row_id=r.row_id, ts=r.ts, features=r.features, received_at=at
            )

        return self._ingest(name, PredictionRow, rows, make)

    def add_labels(self, name: str, rows: Sequence[IngestedLabel], *, at: datetime) -> int:
        def make(model_id: int, r: IngestedLabel) -> LabelRow:
            return LabelRow(model_id=model_id, row_id=r.row_id, label=r.label, received_at=at)

        return self._ingest(name, LabelRow, rows, make)

    def _ingest(self, name: str, table: Any, rows: Sequence[Any], make: Any) -> int:
        ids = [r.row_id for r in rows]
        again = repeated(ids)
        if again:
            raise DuplicateIds(name, list(dict.fromkeys(again)))
        with self._session(immediate=True) as s:
            model_id = self._model_id(s, name)
            known: set[str] = set()
            for start in range(0, len(ids), CHUNK):  # bounded IN lists
                chunk = ids[start : start + CHUNK]
                known |= set(
                    s.exec(
                        select(table.row_id).where(
                            and_(table.model_id == model_id, col(table.row_id).in_(chunk))
                        )
                    )
                )
            if known:
                raise DuplicateIds(name, [i for i in ids if i in known])
            s.add_all(make(model_id, r) for r in rows)
            try:
                s.commit()
            except IntegrityError:  # a concurrent batch stored one of these ids first
                s.rollback()
                raise DuplicateIds(name, [], concurrent=True) from None
        return len(rows)

    def count_ingested(self, name: str) -> tuple[int, int]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            predictions = s.exec(
                select(func.count())
                .select_from(PredictionRow)
                .where(PredictionRow.model_id == model_id)
            ).one()
            labels = s.exec(
                select(func.count()).select_from(LabelRow).where(LabelRow.model_id == model_id)
            ).one()
        return int(predictions), int(labels)

    def ingested(self, name: str, start: datetime, end: datetime) -> list[IngestedRow]:
        with self._session() as s:
            model_id = self._model_id(s, name)
            query = (
                select(PredictionRow, LabelRow.label)
                .join(
                    LabelRow,
                    and_(
                        LabelRow.model_id == PredictionRow.model_id,
                        LabelRow.row_id == PredictionRow.row_id,
                    ),
                    isouter=True,
                )
                .where(
                    PredictionRow.model_id == model_id,
                    col(PredictionRow.ts) >= utc(start),
                    col(PredictionRow.ts) < utc(end),
                )
                .order_by(col(PredictionRow.ts), col(PredictionRow.id))
            )
            return [IngestedRow(p.row_id, p.ts, p.features, label) for p, label in s.exec(query)]

    # -- scrape-time summaries ----------------------------------------------------------------

    def champion_summaries(self) -> list[ChampionSummary]:
        """Three aggregate reads, whatever the number of models."""
        # the newest event that made each version champion: why the champion serves
        newest = (
            select(
                col(EventRow.model_id).label("model_id"),
                col(EventRow.to_version).label("to_version"),
                func.max(EventRow.id).label("id"),
            )
            .group_by(col(EventRow.model_id), col(EventRow.to_version))
            .subquery()
        )
        made = aliased(EventRow)
        with self._session() as s:
            champions = s.exec(
                select(ModelRow, VersionRow, made.reason)
                .join(
                    VersionRow,
                    and_(
                        VersionRow.model_id == ModelRow.id,
                        VersionRow.version == ModelRow.champion_version,
                    ),
                    isouter=True,
                )
                .join(
                    newest,
                    and_(
                        newest.c.model_id == ModelRow.id,
                        newest.c.to_version == ModelRow.champion_version,
                    ),
                    isouter=True,
                )
                .join(made, col(made.id) == newest.c.id, isouter=True)
                .order_by(ModelRow.name)
            ).all()
            counts = {
                model_id: (int(total), int(waiting or 0))
                for model_id, total, waiting in s.exec(
                    select(
                        VersionRow.model_id,
                        func.count(),
                        func.sum(case((col(VersionRow.status) == "pending", 1), else_=0)),
                    ).group_by(col(VersionRow.model_id))
                )
            }
            kinds: dict[tuple[int, str], int] = {
                (model_id, kind): int(n)
                for model_id, kind, n in s.exec(
                    select(EventRow.model_id, EventRow.kind, func.count()).group_by(
                        col(EventRow.model_id), col(EventRow.kind)
                    )
                )
            }
        out = []
        for model, champion, reason in champions:
            assert model.id is not None
            total, waiting = counts.get(model.id, (0, 0))
            latency = champion.metrics.get("latency_seconds") if champion else None
            out.append(
                ChampionSummary(
                    name=model.name,
                    champion_version=model.champion_version,
                    champion_since=model.champion_since,
                    champion_size_bytes=champion.size_bytes if champion else 0,
                    champion_latency_seconds=None if latency is None else float(latency),
                    versions=total,
                    pending=waiting,
                    promotions=kinds.get((model.id, "promote"), 0),
                    rollbacks=kinds.get((model.id, "rollback"), 0),
                    champion_trigger=champion.trigger if champion else "",
                    champion_reason=reason or "",
                )
            )
        return out

    def recent_versions(self, per_model: int) -> dict[str, list[VersionRecord]]:
        """One read: the versions ranked newest first per model, cut at ``per_model``."""
        rank = (
            func.row_number()
            .over(partition_by=col(VersionRow.model_id), order_by=col(VersionRow.version).desc())
            .label("rank")
        )
        ranked = select(VersionRow, rank).subquery()
        version = aliased(VersionRow, ranked)
        query = (
            select(ModelRow.name, version)
            .join(version, col(version.model_id) == ModelRow.id)
            .where(ranked.c.rank <= per_model)
            .order_by(ModelRow.name, col(version.version))
        )
        out: dict[str, list[VersionRecord]] = {}
        with self._session() as s:
            for name, row in s.exec(query):
                out.setdefault(name, []).append(_record(VersionRecord, row))
        return out

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _commit(s: Session, row: SQLModel, cls: type[R]) -> R:
        s.add(row)
        s.commit()
        s.refresh(row)
        return _record(cls, row)
