"""The ``Store``: the one place the daemon's state is read and written.

Who calls it: the cycle (record checks, decisions and runs; add and promote versions; backfill
old checks), the API (models, champions, ingestion, readiness), the CLI, the metrics collectors
and the tests. Implementations: ``SqlStore`` (SQLite, PostgreSQL) and ``MemoryStore`` (the unit
tests' default). Every one passes ``reoptd.testing.store_contract``.

A backend implements the abstract primitives; the higher-level methods here (``add_version``,
``promote``/``rollback`` with their listeners, ``champion``, ``state``, ``replay_states``,
``history``, ``pending``, ``approve``) are built on them once, so every backend means the same
thing by them. Records go in and come out frozen (``reoptd.store.records``), never database rows.

Guarantees every backend gives:
- a version is visible only after both its artifacts are durably stored (``add_version`` writes
  them first); a failed artifact write leaves no version;
- the champion changes only inside ``_swap``, atomically with its event, under a lock that
  serialises promotions and rollbacks of one model (each event's ``from_version`` is the
  champion before it); the target's artifacts are verified first;
- a batch of ingested rows is stored whole or not at all;
- runs are durable jobs: ``enqueue_run`` writes one ``queued`` with its ``job`` (at most one
  queued or running run per model), ``claim_run`` hands it to exactly one executor (atomic:
  ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) with a lease its executor
  renews (``renew_run``); ``expire_runs`` re-queues a run whose lease ran out or whose process
  died (``MAX_ATTEMPTS`` claims in all), then fails it with the reason: never left ``running``;
- each model is checked by one replica at a time: ``own_model`` gives it to one live process
  (a dead one's models are free, like its locks);
- one cycle or run per model across processes: ``model_lock`` is a lease held by one live
  process (``owner``); a lock or a ``running`` run whose process is gone (not seen for ``LEASE``
  of real time, or its pid dead on this host) is free / closed as interrupted, never one whose
  process is alive.

Leases are real time (``datetime.now``), not the injected clock: they are about processes, not
about the model's simulated time. The daemon's clock is shared the other way round: the daemon
records its reading in ``heartbeat``, and ``daemon_clock`` gives it to the CLI, so champion
changes made from the CLI are stamped in the daemon's time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from reoptd.errors import ArtifactError, ModelBusy, ReoptdError
from reoptd.policy import CheckView, ModelState, Policy
from reoptd.signals import Signals
from reoptd.store.artifacts import ArtifactStore
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

log = logging.getLogger("reoptd.store")

#: called after every committed champion change with (model name, event); see ``listeners``
Listener = Callable[[str, EventRecord], object]

#: what a run left ``running`` by a process that died is closed with
INTERRUPTED = "interrupted: the daemon stopped before the run finished"
#: claims of one run before an expired lease fails it instead of re-queuing it
MAX_ATTEMPTS = 3
#: outcomes of a run not finished yet
ACTIVE = ("queued", "running")

#: a process not seen for this long (real time) is gone: its model locks are free, its runs are
#: closed as interrupted
LEASE = timedelta(seconds=30)
#: how often a live process renews its lease (seconds of real time)
HEARTBEAT = 5.0
#: an unreferenced artifact file younger than this (real time) may belong to a run in flight
ARTIFACT_GRACE = timedelta(hours=1)
#: process rows unseen for this long are deleted
FORGET = timedelta(days=7)


def gone(run_owner: str | None, owner: str, processes: dict[str, ProcessRecord]) -> bool:
    """Whether a ``running`` run of ``run_owner`` was cut off, as ``owner`` sees it at start:
    its process is not alive, or it is ``owner``'s own (nothing runs yet), or it predates
    owners."""
    if run_owner is None or run_owner == owner:
        return True
    return not alive(processes.get(run_owner), owner, wall_now())


def expired(
    run_owner: str | None,
    lease_until: datetime | None,
    owner: str,
    processes: dict[str, ProcessRecord],
    now: datetime,
) -> bool:
    """Whether a ``running`` run with a lease has lost it, as ``owner`` sees it: the lease ran
    out, or (another process's run) its process is not alive. Runs without a lease (``start_run``)
    are ``close_interrupted_runs``'s."""
    if lease_until is None:
        return False
    if lease_until < now:
        return True
    return run_owner != owner and not alive(processes.get(run_owner or ""), owner, now)


def requeue_or_fail(attempts: int, max_attempts: int, run_owner: str | None) -> tuple[str, str]:
    """(outcome, reason) of a run whose lease expired after ``attempts`` claims."""
    why = f"executor {run_owner} stopped renewing its lease"
    if attempts < max_attempts:
        return "queued", f"re-queued after attempt {attempts}: {why}"
    return "failed", f"lease expired on attempt {attempts} of {max_attempts}: {why}"


def new_owner() -> str:
    """A name for this process's use of a store: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def wall_now() -> datetime:
    """Real time, for leases only."""
    return datetime.now(UTC)


def alive(process: ProcessRecord | None, owner: str, now: datetime) -> bool:
    """Whether the process behind ``process`` (``owner``, asking) still holds its leases: seen
    within ``LEASE``, and on this host its pid still runs (another store of this very process is
    not: a process has one daemon)."""
    if process is None or now - process.seen_at > LEASE:
        return False
    if process.host != socket.gethostname():
        return True
    if process.pid == os.getpid():
        return process.owner == owner
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


#: check fields ``update_check`` may change (the rest are fixed when the check is recorded)
CHECK_CHANGES = frozenset(
    {
        "status",
        "reason",
        "rows",
        "labelled_rows",
        "drift_share",
        "dataset_drift",
        "features",
        "metrics",
        "signals",
        "seconds",
    }
)


def check_changes(check_id: int, changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` if ``update_check`` may apply them all, else ``ReoptdError`` naming the rest."""
    unknown = sorted(set(changes) - CHECK_CHANGES)
    if unknown:
        raise ReoptdError(
            f"check {check_id}: cannot change {', '.join(unknown)}"
            f" (changeable: {', '.join(sorted(CHECK_CHANGES))})"
        )
    return changes


def repeated(ids: Sequence[str]) -> list[str]:
    """The ids that occur more than once in one batch."""
    seen: set[str] = set()
    again = []
    for row_id in ids:
        if row_id in seen:
            again.append(row_id)
        seen.add(row_id)
    return again


class Store(ABC):
    """The daemon's state: models, versions, checks, decisions, runs, champion events, ingested
    rows; artifacts through ``artifacts``."""

    #: where the state lives (an SQLAlchemy URL, or ``memory://``)
    url: str
    #: model and reference bytes, verified on load
    artifacts: ArtifactStore
    #: this store's process in leases, locks and runs (``new_owner``)
    owner: str
    #: told of every promotion and rollback once committed, whatever made it (the loop, the API,
    #: the CLI): the webhooks hang here. A failing listener is logged, never raised.
    listeners: list[Listener]

    # -- the store itself ---------------------------------------------------------------------

    @property
    @abstractmethod
    def display_url(self) -> str:
        """``url`` with any password hidden, for logs and error messages."""

    @property
    @abstractmethod
    def optuna_storage(self) -> str | None:
        """Where Optuna keeps its studies (the same database), or None for Optuna's memory."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers (the API's readiness probe)."""

    def close(self) -> None:  # noqa: B027 - optional: a store without connections has none to close
        """Release connections; the store is not used afterwards."""

    # -- processes, leases and the daemon's clock ------------------------------------------------

    @abstractmethod
    def heartbeat(self, *, clock_at: datetime | None = None, speed: float | None = None) -> None:
        """Renew this process's lease (``seen_at``: now, real time); a daemon also records its
        clock's reading ``clock_at`` and ``speed`` (simulated seconds per real second; None for
        the system clock). Rows unseen for ``FORGET`` are deleted."""

    @abstractmethod
    def processes(self) -> list[ProcessRecord]:
        """Every process that renewed a lease (live or not), oldest first."""

    @abstractmethod
    def _try_lock(self, name: str) -> str | None:
        """Atomically take the lock of model ``name`` for ``owner`` unless another live process
        (``alive``) holds it; None when taken (or already ours), else the holder's owner."""

    @abstractmethod
    def unlock_model(self, name: str) -> None:
        """Release the lock of ``name`` if this process holds it."""

    @abstractmethod
    def own_model(self, name: str) -> str | None:
        """Make this process the replica that checks ``name`` unless another live process
        (``alive``) owns it; None when owned by us now, else the owner. Unlike ``model_lock``
        (one cycle), ownership lasts until ``disown_model`` or the owner's death."""

    @abstractmethod
    def disown_model(self, name: str) -> None:
        """Give up ``name`` if this process owns it (a replica that stops)."""

    @abstractmethod
    def model_owners(self) -> dict[str, str]:
        """Model name -> the process owning it (live or not)."""

    @contextmanager
    def model_lock(self, name: str, *, wait: float = 0.0, poll: float = 0.2) -> Iterator[None]:
        """Hold model ``name``'s lock for a cycle or a run: wait up to ``wait`` seconds for the
        holder, then ``ModelBusy`` naming it. The lease is renewed while held."""
        self.heartbeat()
        deadline = time.monotonic() + wait
        while (holder := self._try_lock(name)) is not None:
            if time.monotonic() >= deadline:
                raise ModelBusy(name, holder, wait)
            time.sleep(poll)
        done = threading.Event()

        def renew() -> None:
            while not done.wait(HEARTBEAT):
                try:
                    self.heartbeat()
                except ReoptdError as exc:  # the database is away: the next beat retries
                    log.warning("%s: cannot renew the lease of %s: %s", name, self.owner, exc)

        renewer = threading.Thread(target=renew, name=f"lease {name}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            self.unlock_model(name)

    def daemon_clock(self) -> datetime | None:
        """The daemon's time now, when the newest daemon runs a simulated or accelerated clock:
        its last reading plus the real time since × its speed (a stopped daemon's clock stands
        still); None when no daemon recorded a simulated clock (the system clock is right)."""
        daemons = [p for p in self.processes() if p.clock_at is not None]
        if not daemons:
            return None
        newest = max(daemons, key=lambda p: p.seen_at)
        if newest.clock_speed is None or newest.clock_at is None:
            return None
        now = wall_now()
        if not alive(newest, self.owner, now):
            return newest.clock_at
        return newest.clock_at + (now - newest.seen_at) * newest.clock_speed

    # -- models -------------------------------------------------------------------------------

    @abstractmethod
    def ensure_model(self, policy: Policy, at: datetime) -> ModelRecord:
        """The model of ``policy``, created on first sight; its policy snapshot refreshed."""

    @abstractmethod
    def model(self, name: str) -> ModelRecord:
        """The model ``name``; ``ModelNotFound`` if unknown."""

    @abstractmethod
    def models(self) -> list[ModelRecord]:
        """Every model, by name."""

    # -- versions -----------------------------------------------------------------------------

    @abstractmethod
    def versions(self, name: str) -> list[VersionRecord]:
        """Every version of ``name``, oldest first."""

    @abstractmethod
    def version(self, name: str, version: int) -> VersionRecord:
        """One version; ``VersionNotFound`` if there is none."""

    @abstractmethod
    def _insert_version(self, name: str, *, at: datetime, **fields: Any) -> VersionRecord:
        """Insert the next version number of ``name`` with ``fields`` (status ``candidate``);
        called by ``add_version`` once the artifacts are stored."""

    @abstractmethod
    def set_status(self, name: str, version: int, status: str, **metrics: Any) -> VersionRecord:
        """Set a version's status (rejected, pending, shadow …), merging ``metrics`` into its
        metrics."""

    def add_version(
        self,
        name: str,
        *,
        model_bytes: bytes,
        reference_bytes: bytes,
        at: datetime,
        **fields: Any,
    ) -> VersionRecord:
        """Write both artifacts durably, then insert the version (status ``candidate``)."""
        self.model(name)  # an unknown model fails before anything is written
        sha = self.artifacts.put(model_bytes)
        ref_sha = self.artifacts.put(reference_bytes)
        return self._insert_version(
            name,
            at=at,
            artifact_path=self.artifacts.uri(sha),
            sha256=sha,
            size_bytes=len(model_bytes),
            reference_sha256=ref_sha,
            **fields,
        )

    def champion(self, name: str) -> VersionRecord | None:
        model = self.model(name)
        if model.champion_version is None:
            return None
        return self.version(name, model.champion_version)

    def champion_problem(self, name: str) -> str | None:
        """Why the champion of ``name`` cannot be loaded (an artifact missing or failing its
        sha256), or None when it verifies or there is none."""
        champion = self.champion(name)
        if champion is None:
            return None
        try:
            self._verify(champion)
        except ArtifactError as exc:
            return f"champion v{champion.version} unusable: {exc}"
        return None

    def collect_artifacts(self, grace: timedelta = ARTIFACT_GRACE) -> list[str]:
        """Delete artifact files no version references (a run cut off between writing its
        artifacts and inserting its version, a temporary file of a killed write) once older
        than ``grace`` (real time: a run in flight has not inserted its version yet); return
        their keys. Run at the daemon's start. The artifact store belongs to this database."""
        keep: set[str] = set()
        for model in self.models():
            for version in self.versions(model.name):
                keep |= {version.sha256, version.reference_sha256}
        cutoff = wall_now() - grace
        removed = []
        for key, name, written in list(self.artifacts.entries()):
            if name not in keep and written < cutoff:
                self.artifacts.remove(key)
                removed.append(key)
        if removed:
            log.info("removed %d orphaned artifact file(s)", len(removed))
        return removed

    def load_artifact(self, version: VersionRecord) -> bytes:
        """The version's model bytes, sha256-verified (``ArtifactError`` otherwise)."""
        return self.artifacts.get(version.sha256)

    def load_reference(self, version: VersionRecord) -> bytes:
        """The version's drift reference (Parquet bytes), sha256-verified."""
        return self.artifacts.get(version.reference_sha256)

    def pending(self, name: str) -> list[VersionRecord]:
        """Versions that won validation and wait for approval (promote.mode: manual)."""
        return [v for v in self.versions(name) if v.status == "pending"]

    # -- champion changes ---------------------------------------------------------------------

    @abstractmethod
    def _swap(
        self, name: str, version: int | None, *, at: datetime, reason: str, kind: str
    ) -> EventRecord:
        """Make ``version`` the champion (None: the champion before the current one, read under
        the same lock) in one atomic step with its event; the previous champion is retired.

        Under a lock that serialises the swaps of one model: read the champion, refuse a swap to
        it (``ReoptdError``), refuse a rollback without history (``ReoptdError``), verify the
        target with ``_verify`` (``ArtifactError`` leaves everything as it was), then write.
        """

    def _verify(self, version: VersionRecord) -> None:
        """Both artifacts of ``version`` readable and intact, or ``ArtifactError``."""
        self.artifacts.get(version.sha256)
        self.artifacts.get(version.reference_sha256)

    def _rollback_target(self, name: str, champion: int | None, events: Sequence[Any]) -> int:
        """The version that preceded ``champion``: the ``from_version`` of the newest event that
        made it champion (``events`` oldest first)."""
        last = next((e for e in reversed(events) if e.to_version == champion), None)
        if last is None or last.from_version is None:
            raise ReoptdError(f"model {name!r} has no earlier champion to roll back to")
        return int(last.from_version)

    def promote(self, name: str, version: int, *, at: datetime, reason: str = "") -> EventRecord:
        """Make ``version`` the champion in one transaction. Its artifacts are verified first: a
        corrupt or missing artifact raises ``ArtifactError`` and the champion stays as it was."""
        return self._notify(name, self._swap(name, version, at=at, reason=reason, kind="promote"))

    def rollback(self, name: str, *, at: datetime, reason: str = "") -> EventRecord:
        """Return to the champion that preceded the current one."""
        return self._notify(name, self._swap(name, None, at=at, reason=reason, kind="rollback"))

    def approve(self, name: str, version: int | None, *, at: datetime, reason: str) -> EventRecord:
        """Promote a pending version (the newest if ``version`` is None)."""
        waiting = self.pending(name)
        if version is None:
            if not waiting:
                raise ReoptdError(f"model {name!r} has no version waiting for approval")
            version = waiting[-1].version
        elif version not in {v.version for v in waiting}:
            raise ReoptdError(f"version {version} of {name!r} is not waiting for approval")
        return self.promote(name, version, at=at, reason=reason)

    def _notify(self, name: str, event: EventRecord) -> EventRecord:
        for listener in self.listeners:
            try:
                listener(name, event)
            except Exception:  # a notification must never undo or block a committed swap
                log.exception("%s: champion-change listener %r failed", name, listener)
        return event

    @abstractmethod
    def events(self, name: str) -> list[EventRecord]:
        """Every champion change of ``name``, oldest first."""

    # -- checks -------------------------------------------------------------------------------

    @abstractmethod
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
        """Record one check of ``name``."""

    @abstractmethod
    def update_check(self, check_id: int, **changes: Any) -> CheckRecord:
        """Change fields of a recorded check (``CHECK_CHANGES``: metrics, signals,
        labelled_rows …); returns the check as stored now."""

    @abstractmethod
    def checks(self, name: str, limit: int = 50) -> list[CheckRecord]:
        """The ``limit`` most recent checks of ``name``, oldest first."""

    @abstractmethod
    def waiting_checks(self, name: str, since: datetime, until: datetime) -> list[CheckRecord]:
        """Checks of ``name`` at ``since <= at < until`` that were ``ok`` and still had unlabelled
        rows (``labelled_rows < rows``): the candidates of backfill."""

    def history(self, name: str, limit: int = 50) -> list[CheckView]:
        return [check_view(c) for c in self.checks(name, limit)]

    # -- decisions ----------------------------------------------------------------------------

    @abstractmethod
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
        """Record what the policy decided after check ``check_id``."""

    @abstractmethod
    def decisions(self, name: str, limit: int | None = None) -> list[DecisionRecord]:
        """The ``limit`` most recent decisions of ``name`` (all if None), oldest first."""

    def last_decision(self, name: str) -> DecisionRecord | None:
        found = self.decisions(name, limit=1)
        return found[-1] if found else None

    # -- runs ---------------------------------------------------------------------------------

    @abstractmethod
    def start_run(
        self,
        name: str,
        *,
        started_at: datetime,
        trigger: str,
        champion_version: int | None = None,
        decision_id: int | None = None,
    ) -> RunRecord:
        """Record a re-optimization run as ``running``, owned by this store's ``owner``."""

    @abstractmethod
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
        """Record a run of ``name`` as ``queued`` with ``job`` (what executing it needs), unless
        the model has a queued or running run already: that one is returned, nothing written."""

    @abstractmethod
    def claim_run(
        self,
        *,
        models: Sequence[str] | None = None,
        run_id: int | None = None,
        lease: timedelta = LEASE,
    ) -> RunRecord | None:
        """Atomically take the oldest queued run (of ``models`` if given; run ``run_id`` if
        given) for this ``owner``: ``running``, one more attempt, ``lease_until`` now + ``lease``
        (real time). None when there is none: two claimants never get the same run."""

    @abstractmethod
    def renew_run(self, run_id: int, *, lease: timedelta = LEASE) -> bool:
        """Extend the lease of a running run this owner holds; False when it has lost it (the
        lease expired and the run was re-queued or failed): its result must be dropped."""

    @abstractmethod
    def expire_runs(self, *, max_attempts: int = MAX_ATTEMPTS) -> list[RunRecord]:
        """Runs ``running`` whose lease ran out, or whose owner process is gone (another process
        not ``alive``): re-queued while they had fewer than ``max_attempts`` claims, else failed
        with the reason. Returns them as stored now."""

    @contextmanager
    def run_lease(self, run_id: int, lost: threading.Event) -> Iterator[None]:
        """Renew the lease of claimed run ``run_id`` every ``HEARTBEAT`` while the body runs
        (and this process's own lease); ``lost`` is set if another process took it back."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(HEARTBEAT):
                try:
                    self.heartbeat()
                    if not self.renew_run(run_id):
                        lost.set()
                        return
                except ReoptdError as exc:  # the database is away: the next beat retries
                    log.warning("run %d: cannot renew its lease: %s", run_id, exc)

        renewer = threading.Thread(target=renew, name=f"lease run {run_id}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()

    def run(self, name: str, run_id: int) -> RunRecord:
        """Run ``run_id`` of ``name`` as stored now."""
        for run in self.runs(name):
            if run.id == run_id:
                return run
        raise ReoptdError(f"model {name!r} has no run {run_id}")

    @abstractmethod
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
        """Record how a run ended."""

    @abstractmethod
    def runs(self, name: str) -> list[RunRecord]:
        """Every run of ``name``, oldest first."""

    @abstractmethod
    def close_interrupted_runs(self, name: str) -> int:
        """Mark runs left ``running`` by a process that is gone (``alive`` is false: a process
        killed or stopped mid-run, or this very store's own earlier runs, called at start) as
        failed (``INTERRUPTED``); return how many. A run of another live process (the daemon,
        seen by the CLI) is left alone. An unknown model has none."""

    def run_stats(self, name: str, since: datetime) -> RunStats:
        """The last run's start (any run), and the runs other than the bootstrap that started
        after ``since`` with the seconds they took (``RunStats.of``)."""
        return RunStats.of(self.runs(name), since)

    # -- what decide sees ---------------------------------------------------------------------

    def state(self, name: str, now: datetime) -> ModelState:
        """The model's state at ``now``, as the cycle gives it to ``decide`` (before recording
        the decision it is about to make)."""
        model = self.model(name)
        stats = self.run_stats(name, now - timedelta(days=1))
        champion = self.champion(name)
        validation = dict(champion.metrics.get("holdout", {})) if champion else {}
        decision = self.last_decision(name)
        return ModelState(
            champion_version=model.champion_version,
            champion_since=model.champion_since,
            last_run_at=stats.last_started_at,
            runs_last_day=stats.count,
            compute_last_day=stats.seconds,
            champion_metrics={k: float(v) for k, v in validation.items()},
            last_decision_at=None if decision is None else decision.at,
        )

    def replay_states(self, name: str, limit: int = 50) -> list[tuple[CheckView, ModelState]]:
        """The last ``limit`` checks, each with the model's state as ``state`` gave it at that
        check: what ``policy explain --history`` feeds to ``decide``."""
        checks = self.checks(name, limit)
        runs = self.runs(name)
        events = self.events(name)
        # a check's decisions come after it: the last ``limit`` checks made at most ``limit``
        decisions = self.decisions(name, limit=limit + 1)
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
            earlier = [d for d in decisions if _decided_before(d, check)]
            state = ModelState(
                champion_version=check.champion_version,
                champion_since=since,
                last_run_at=max((r.started_at for r in runs if r.started_at < at), default=None),
                runs_last_day=len(day),
                compute_last_day=float(sum(r.seconds for r in day)),
                champion_metrics={k: float(v) for k, v in holdout.items()},
                last_decision_at=max(earlier, key=_decision_order).at if earlier else None,
            )
            out.append((check_view(check), state))
        return out

    # -- ingested rows (policy source kind ``api``) ---------------------------------------------

    @abstractmethod
    def add_predictions(
        self, name: str, rows: Sequence[IngestedPrediction], *, at: datetime
    ) -> int:
        """Store a batch whole, or nothing: an id stored before raises ``DuplicateIds``."""

    @abstractmethod
    def add_labels(self, name: str, rows: Sequence[IngestedLabel], *, at: datetime) -> int:
        """Store a batch of labels whole, or nothing (``DuplicateIds``)."""

    @abstractmethod
    def count_ingested(self, name: str) -> tuple[int, int]:
        """How many predictions and labels are stored for ``name``."""

    @abstractmethod
    def ingested(self, name: str, start: datetime, end: datetime) -> list[IngestedRow]:
        """Predictions with ``start <= ts < end``, oldest first, each with its label (or None)."""

    # -- scrape-time summaries (one read per scrape, whatever the number of models) ------------

    def champion_summaries(self) -> list[ChampionSummary]:
        """Per model: champion, its size and latency, version and pending counts, promotions
        and rollbacks. Backends override this with one aggregate read."""
        out = []
        for model in self.models():
            versions = self.versions(model.name)
            champion = next((v for v in versions if v.version == model.champion_version), None)
            out.append(_summary(model, champion, versions, self.events(model.name)))
        return out

    def recent_versions(self, per_model: int) -> dict[str, list[VersionRecord]]:
        """The ``per_model`` newest versions of every model, oldest first. Backends override
        this with one read."""
        return {m.name: self.versions(m.name)[-per_model:] for m in self.models()}


def _summary(
    model: ModelRecord,
    champion: VersionRecord | None,
    versions: Sequence[VersionRecord],
    events: Sequence[EventRecord],
) -> ChampionSummary:
    """``events`` oldest first: the newest that made the champion gives the reason."""
    latency = champion.metrics.get("latency_seconds") if champion else None
    kinds = [e.kind for e in events]
    made = next((e for e in reversed(events) if e.to_version == model.champion_version), None)
    return ChampionSummary(
        name=model.name,
        champion_version=model.champion_version,
        champion_since=model.champion_since,
        champion_size_bytes=champion.size_bytes if champion else 0,
        champion_latency_seconds=None if latency is None else float(latency),
        versions=len(versions),
        pending=sum(v.status == "pending" for v in versions),
        promotions=sum(k == "promote" for k in kinds),
        rollbacks=sum(k == "rollback" for k in kinds),
        champion_trigger=champion.trigger if champion else "",
        champion_reason=made.reason if made is not None else "",
    )


def _decided_before(decision: DecisionRecord, check: CheckRecord) -> bool:
    """Whether ``decision`` was stored before ``check``'s own decision was made: the cycle reads
    the state after recording the check and before deciding on it."""
    if decision.check_id is not None and check.id is not None:
        return decision.check_id < check.id
    return decision.at < check.at


def _decision_order(decision: DecisionRecord) -> tuple[int, datetime]:
    """The order ``last_decision`` uses: the newest stored."""
    return decision.id or 0, decision.at


def check_view(check: CheckRecord) -> CheckView:
    """The stored check as ``decide`` sees it."""
    signals = Signals.from_json(check.signals)
    prediction = signals.prediction_drift
    band = signals.estimation
    return CheckView(
        at=check.at,
        status=check.status,
        champion_version=check.champion_version,
        drift_share=check.drift_share,
        metrics=dict(check.metrics),
        labelled_rows=check.labelled_rows,
        drifted=tuple(f for f, d in (check.features or {}).items() if d.get("drifted")),
        prediction_drift=None if prediction is None else prediction.drifted,
        estimated=dict(signals.estimated),
        estimated_lower=dict(band.lower or {}) if band is not None else {},
        estimated_upper=dict(band.upper or {}) if band is not None else {},
        estimated_confidence=None if band is None else band.confidence,
        new_rows=signals.new_rows,
        multivariate_auc=None if signals.multivariate is None else signals.multivariate.auc,
    )
