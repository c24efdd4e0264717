"""The registry: models, their versions, and which version is champion.

Who calls it: the cycle (record checks, decisions, runs; add and promote versions), the CLI
(``reoptd models …``, ``reoptd status``) and the tests. A version row is inserted only after its
artifacts are durably written and verified, so no partial version is ever visible; the champion
changes only inside ``promote``/``rollback``, each one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, create_engine, select

from reoptd.clock import utc
from reoptd.errors import ModelNotFound, ReoptdError, VersionNotFound
from reoptd.policy import CheckView, ModelState, Policy
from reoptd.registry._artifacts import ArtifactStore
from reoptd.registry._migrate import upgrade
from reoptd.registry._tables import CheckRow, DecisionRow, EventRow, ModelRow, RunRow, VersionRow
from reoptd.signals import Signals

log = logging.getLogger("reoptd.registry")

#: called after every committed champion change with (model name, event); see ``listeners``
Listener = Callable[[str, EventRow], None]


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
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Registry:
    def __init__(self, url: str, artifacts: str | Path | ArtifactStore) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.artifacts = (
            artifacts if isinstance(artifacts, ArtifactStore) else ArtifactStore(artifacts)
        )
        #: told of every promotion and rollback once committed, whatever made it (the loop, the
        #: API, the CLI): the webhooks hang here. A failing listener is logged, never raised.
        self.listeners: list[Listener] = []
        try:
            upgrade(self.engine)
        except OperationalError as exc:
            safe = make_url(url).render_as_string(hide_password=True)
            raise ReoptdError(f"cannot reach the database {safe}: {exc.orig}") from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    # -- models -------------------------------------------------------------------------------

    def ensure_model(self, policy: Policy, at: datetime) -> ModelRow:
        """The model row for ``policy``, created on first sight; its policy snapshot refreshed."""
        snapshot = policy.model_dump(mode="json", by_alias=True)
        with self.session() as s:
            row = s.exec(select(ModelRow).where(ModelRow.name == policy.model)).first()
            if row is None:
                row = ModelRow(name=policy.model, task=policy.task, created_at=at, policy=snapshot)
            else:
                row.policy = snapshot
                row.task = policy.task
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def model(self, name: str) -> ModelRow:
        with self.session() as s:
            row = s.exec(select(ModelRow).where(ModelRow.name == name)).first()
            if row is None:
                raise ModelNotFound(name)
            return row

    def models(self) -> list[ModelRow]:
        with self.session() as s:
            return list(s.exec(select(ModelRow).order_by(ModelRow.name)))

    # -- versions -----------------------------------------------------------------------------

    def versions(self, name: str) -> list[VersionRow]:
        model = self.model(name)
        with self.session() as s:
            query = select(VersionRow).where(VersionRow.model_id == model.id)
            return list(s.exec(query.order_by(VersionRow.version)))

    def version(self, name: str, version: int) -> VersionRow:
        model = self.model(name)
        with self.session() as s:
            row = s.exec(
                select(VersionRow).where(
                    VersionRow.model_id == model.id, VersionRow.version == version
                )
            ).first()
            if row is None:
                raise VersionNotFound(name, version)
            return row

    def champion(self, name: str) -> VersionRow | None:
        model = self.model(name)
        return (
            None if model.champion_version is None else self.version(name, model.champion_version)
        )

    def add_version(
        self,
        name: str,
        *,
        model_bytes: bytes,
        reference_bytes: bytes,
        at: datetime,
        **fields: Any,
    ) -> VersionRow:
        """Write both artifacts durably, then insert the version row (status ``candidate``)."""
        sha = self.artifacts.put(model_bytes)
        ref_sha = self.artifacts.put(reference_bytes)
        model = self.model(name)
        with self.session() as s:
            latest = s.exec(
                select(func.max(VersionRow.version)).where(VersionRow.model_id == model.id)
            ).one()
            row = VersionRow(
                model_id=model.id,
                version=(latest or 0) + 1,
                created_at=at,
                artifact_path=str(self.artifacts.path(sha)),
                sha256=sha,
                size_bytes=len(model_bytes),
                reference_sha256=ref_sha,
                **fields,
            )
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def set_status(self, name: str, version: int, status: str, **metrics: Any) -> None:
        row = self.version(name, version)
        with self.session() as s:
            row = s.get(VersionRow, row.id)
            assert row is not None
            row.status = status
            if metrics:
                row.metrics = {**row.metrics, **metrics}
            s.add(row)
            s.commit()

    def load_artifact(self, row: VersionRow) -> bytes:
        return self.artifacts.get(row.sha256)

    def load_reference(self, row: VersionRow) -> bytes:
        return self.artifacts.get(row.reference_sha256)

    # -- champion changes ---------------------------------------------------------------------

    def promote(self, name: str, version: int, *, at: datetime, reason: str = "") -> EventRow:
        """Make ``version`` the champion in one transaction. Its artifact is verified first: a
        corrupt or missing artifact raises ``ArtifactError`` and the champion stays as it was."""
        return self._swap(name, version, at=at, reason=reason, kind="promote")

    def rollback(self, name: str, *, at: datetime, reason: str = "") -> EventRow:
        """Return to the champion that preceded the current one."""
        model = self.model(name)
        with self.session() as s:
            last = s.exec(
                select(EventRow)
                .where(EventRow.model_id == model.id, EventRow.to_version == model.champion_version)
                .order_by(col(EventRow.id).desc())
            ).first()
        if last is None or last.from_version is None:
            raise ReoptdError(f"model {name!r} has no earlier champion to roll back to")
        return self._swap(name, last.from_version, at=at, reason=reason, kind="rollback")

    def _swap(self, name: str, version: int, *, at: datetime, reason: str, kind: str) -> EventRow:
        target = self.version(name, version)
        self.artifacts.get(target.sha256)  # raises ArtifactError: refuse before touching anything
        self.artifacts.get(target.reference_sha256)
        with self.session() as s:
            model = s.exec(select(ModelRow).where(ModelRow.name == name).with_for_update()).one()
            previous = model.champion_version
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
        for listener in self.listeners:
            try:
                listener(name, event_row)
            except Exception:  # a notification must never undo or block a committed swap
                log.exception("%s: champion-change listener %r failed", name, listener)
        return event_row

    def events(self, name: str) -> list[EventRow]:
        model = self.model(name)
        with self.session() as s:
            query = select(EventRow).where(EventRow.model_id == model.id)
            return list(s.exec(query.order_by(EventRow.id)))

    # -- checks, decisions, runs --------------------------------------------------------------

    def add(self, row: Any) -> Any:
        """Insert one check, decision or run row and return it with its id."""
        with self.session() as s:
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    # The write API of the coming Store contract, as thin wrappers over ``add`` (the store
    # package replaces them): callers name the model and pass fields, never build rows.

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
    ) -> CheckRow:
        row = CheckRow(
            model_id=self.model(name).id,
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
        return self.add(row)

    def update_check(self, check_id: int, **changes: Any) -> CheckRow:
        return self._update(CheckRow, check_id, changes)

    def add_decision(
        self,
        name: str,
        *,
        check_id: int | None,
        at: datetime,
        fire: bool,
        triggers: list[str],
        reasons: str,
    ) -> DecisionRow:
        row = DecisionRow(
            model_id=self.model(name).id,
            check_id=check_id,
            at=at,
            fire=fire,
            triggers=triggers,
            reasons=reasons,
        )
        return self.add(row)

    def start_run(
        self,
        name: str,
        *,
        started_at: datetime,
        trigger: str,
        champion_version: int | None = None,
        decision_id: int | None = None,
    ) -> RunRow:
        row = RunRow(
            model_id=self.model(name).id,
            decision_id=decision_id,
            started_at=started_at,
            trigger=trigger,
            champion_version=champion_version,
        )
        return self.add(row)

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
    ) -> RunRow:
        changes = {
            "finished_at": finished_at,
            "outcome": outcome,
            "reason": reason,
            "challenger_version": challenger_version,
            "steps": steps or {},
            "seconds": seconds,
        }
        return self._update(RunRow, run_id, changes)

    def _update(self, table: Any, row_id: int, changes: dict[str, Any]) -> Any:
        with self.session() as s:
            row = s.get(table, row_id)
            if row is None:
                raise ReoptdError(f"no {table.__tablename__} row with id {row_id}")
            for key, value in changes.items():
                setattr(row, key, value)
            s.add(row)
            s.commit()
            s.refresh(row)
            return row

    def checks(self, name: str, limit: int = 50) -> list[CheckRow]:
        """The ``limit`` most recent checks of ``name``, oldest first."""
        model = self.model(name)
        with self.session() as s:
            rows = s.exec(
                select(CheckRow)
                .where(CheckRow.model_id == model.id)
                .order_by(col(CheckRow.at).desc(), col(CheckRow.id).desc())
                .limit(limit)
            )
            return list(reversed(list(rows)))

    def last_decision(self, name: str) -> DecisionRow | None:
        model = self.model(name)
        with self.session() as s:
            return s.exec(
                select(DecisionRow)
                .where(DecisionRow.model_id == model.id)
                .order_by(col(DecisionRow.id).desc())
            ).first()

    def runs(self, name: str) -> list[RunRow]:
        model = self.model(name)
        with self.session() as s:
            query = select(RunRow).where(RunRow.model_id == model.id)
            return list(s.exec(query.order_by(RunRow.id)))

    def close_interrupted_runs(self, name: str) -> int:
        """Mark runs left ``running`` by a process that died as failed; return how many."""
        try:
            model = self.model(name)
        except ModelNotFound:
            return 0
        with self.session() as s:
            stale = list(
                s.exec(
                    select(RunRow).where(RunRow.model_id == model.id, RunRow.outcome == "running")
                )
            )
            for run in stale:
                run.outcome = "failed"
                run.reason = "interrupted: the daemon stopped before the run finished"
                s.add(run)
            s.commit()
        return len(stale)

    def history(self, name: str, limit: int = 50) -> list[CheckView]:
        return [check_view(c) for c in self.checks(name, limit)]

    def state(self, name: str, now: datetime) -> ModelState:
        model = self.model(name)
        with self.session() as s:
            last = s.exec(
                select(func.max(RunRow.started_at)).where(RunRow.model_id == model.id)
            ).one()
            count, seconds = s.exec(
                select(func.count(), func.coalesce(func.sum(RunRow.seconds), 0.0))
                .select_from(RunRow)
                .where(
                    RunRow.model_id == model.id,
                    RunRow.started_at > now - timedelta(days=1),
                    RunRow.trigger != "bootstrap",
                )
            ).one()
        champion = self.champion(name)
        validation = dict(champion.metrics.get("holdout", {})) if champion else {}
        decision = self.last_decision(name)
        return ModelState(
            champion_version=model.champion_version,
            champion_since=model.champion_since,
            last_run_at=None if last is None else utc(last),
            runs_last_day=int(count),
            compute_last_day=float(seconds),
            champion_metrics={k: float(v) for k, v in validation.items()},
            last_decision_at=None if decision is None else decision.at,
        )

    def replay_states(self, name: str, limit: int = 50) -> list[tuple[CheckView, ModelState]]:
        """The last ``limit`` checks, each with the model's state as it was at that check:
        what ``policy explain --history`` feeds to ``decide``."""
        checks = self.checks(name, limit)
        runs = self.runs(name)
        events = self.events(name)
        versions = {v.version: v for v in self.versions(name)}
        out = []
        for check in checks:
            at = check.at
            before = [r for r in runs if r.started_at < at and r.trigger != "bootstrap"]
            day = [r for r in before if r.started_at > at - timedelta(days=1)]
            since = max(
                (e.at for e in events if e.to_version == check.champion_version and e.at <= at),
                default=None,
            )
            version = versions.get(check.champion_version) if check.champion_version else None
            holdout = version.metrics.get("holdout", {}) if version else {}
            state = ModelState(
                champion_version=check.champion_version,
                champion_since=since,
                last_run_at=max((r.started_at for r in runs if r.started_at < at), default=None),
                runs_last_day=len(day),
                compute_last_day=sum(r.seconds for r in day),
                champion_metrics={k: float(v) for k, v in holdout.items()},
            )
            out.append((check_view(check), state))
        return out

    def pending(self, name: str) -> list[VersionRow]:
        """Versions that won validation and wait for approval (promote.mode: manual)."""
        return [v for v in self.versions(name) if v.status == "pending"]

    def approve(self, name: str, version: int | None, *, at: datetime, reason: str) -> EventRow:
        """Promote a pending version (the newest if ``version`` is None)."""
        waiting = self.pending(name)
        if version is None:
            if not waiting:
                raise ReoptdError(f"model {name!r} has no version waiting for approval")
            version = waiting[-1].version
        elif version not in {v.version for v in waiting}:
            raise ReoptdError(f"version {version} of {name!r} is not waiting for approval")
        return self.promote(name, version, at=at, reason=reason)


def check_view(row: CheckRow) -> CheckView:
    """The stored check as ``decide`` sees it."""
    signals = Signals.from_json(row.signals)
    prediction = signals.prediction_drift
    return CheckView(
        at=row.at,
        status=row.status,
        champion_version=row.champion_version,
        drift_share=row.drift_share,
        metrics=dict(row.metrics),
        labelled_rows=row.labelled_rows,
        drifted=tuple(f for f, d in (row.features or {}).items() if d.get("drifted")),
        prediction_drift=None if prediction is None else prediction.drifted,
        estimated=dict(signals.estimated),
        new_rows=signals.new_rows,
        multivariate_auc=None if signals.multivariate is None else signals.multivariate.auc,
    )
