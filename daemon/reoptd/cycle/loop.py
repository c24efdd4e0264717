"""The one code path: check -> decide -> optimize -> promote, for one model at one instant.

The live service calls ``ModelLoop.cycle`` from APScheduler, the tests call it with a simulated
clock's time, and so does the backtester. Nothing here reads the wall clock for "now": it is
always an argument. Durations of work are measured with ``time.perf_counter``.

A cycle: check the window, re-score past windows whose labels came (``backfill``), judge a
shadow challenger and the post-promotion guard (``promotion``), record the check once, act on
the verdicts, decide, and re-optimize if the decision fires. ``start`` is the one step that
touches the store and the metrics before the first cycle; building a loop does no I/O.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reoptd.cycle.backfill import backfill, label_health
from reoptd.cycle.promotion import Judgement, Promotion
from reoptd.cycle.reference import DriftReference, Versions
from reoptd.cycle.watcher import PolicyWatcher
from reoptd.data import Source, open_source
from reoptd.errors import ArtifactError, DataError, EmptyWindow, ReoptdError, StoreUnavailable
from reoptd.metrics import Metrics
from reoptd.monitor import Champion, CheckResult, check, evaluate
from reoptd.optimize import Executor, open_executor, run_pipeline
from reoptd.policy import Decision, Policy, checks_needed, decide, format_duration
from reoptd.settings import Settings
from reoptd.signals import Signals
from reoptd.store import INTERRUPTED, CheckRecord, ModelRecord, RunRecord, Store

log = logging.getLogger("reoptd.loop")


@dataclass
class CycleOutcome:
    """What one cycle did, for callers that want more than the log line."""

    check: CheckRecord | None = None
    decision: Decision | None = None
    run: RunRecord | None = None
    #: the unexpected error that cut the cycle short (class: message), recorded when it could be
    error: str | None = None


class ModelLoop:
    """Runs cycles for one model. Holds the loaded champion between cycles (reloaded on change)."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        metrics: Metrics,
        source: Source | None = None,
        *,
        watcher: PolicyWatcher | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.metrics = metrics
        self.source = source if source is not None else open_source(policy, store)
        self.watcher = watcher if watcher is not None else PolicyWatcher([policy], metrics)
        # where runs execute (default: REOPTD_EXECUTOR); the service stops it when it stops
        if executor is None:
            settings = Settings()
            executor = open_executor(settings.executor, settings.slots)
        self.executor = executor
        # the control plane's dispatcher (the service's): a fired decision queues the run and
        # hands it over, and the cycle returns; None: ``optimize`` executes it in this thread
        self.dispatch: Callable[[RunRecord], object] | None = None
        # one of this model's cycles or run completions at a time within this process
        self.lock = threading.RLock()
        self.versions = Versions(store, policy.model)  # loaded models, cached
        self.reference = DriftReference()  # monitor.reference: what drift is measured against
        self.promotion = Promotion(store, self.versions.load)
        self.progress = False  # progress bars for long steps (the CLI turns them on)
        # how the backfill scores a past window's labelled rows (a backtest memoizes it)
        self.measure: Callable[..., dict[str, float]] = evaluate
        self._snapshot: Policy | None = None  # the policy last written to the model's row
        self._stage = "check"  # the part of the cycle under way, for the error counter
        self._outage: tuple[datetime, datetime, str] | None = None  # store down: first, last, why
        self._unfinished: int | None = None  # a run whose final write failed

    @property
    def name(self) -> str:
        return self.policy.model

    def start(self) -> None:
        """Before the first cycle: declare the model's series, note the policy file's stamp,
        re-queue the runs whose executor died (expired lease) and close the runs a crash or a
        kill left "running" without one."""
        self.metrics.declare(self.policy)
        self.watcher.start(self.name)
        for run in self.store.expire_runs():
            log.warning("run %s: %s: %s", run.id, run.outcome, run.reason)
        self.store.close_interrupted_runs(self.name)

    def update_policy(self, policy: Policy) -> None:
        self.watcher.put(policy)
        self._use(policy)

    def reload_if_changed(self) -> bool:
        """Re-read the policy file if it changed; True if a new policy is in force (see
        ``PolicyWatcher``: an invalid edit keeps the last valid policy)."""
        policy = self.watcher.refresh(self.name)
        if policy is self.policy:
            return False
        self._use(policy)
        return True

    def _use(self, policy: Policy) -> None:
        self.policy = policy
        self.source = open_source(policy, self.store)
        self.versions.forget()  # drift settings may have changed: rebuild the detector
        self.reference.forget()

    # -- the cycle ------------------------------------------------------------------------------

    def cycle(self, now: datetime) -> CycleOutcome:
        """One monitoring cycle at ``now``; a first cycle trains and promotes version 1, then
        checks the window with it (the next cycle decides on what it sees).

        Nothing escapes it: any exception (a driver's, sklearn's, an OS error) is logged with its
        traceback, counted in ``reoptd_cycle_errors_total{model,stage}`` and recorded as a failed
        check naming its class and message, and the next cycle runs as usual. While the store
        cannot be reached nothing can be recorded: the outage is remembered and recorded, once,
        as a failed check "database unreachable from T1 to T2" by the first cycle that can write.
        """
        try:
            self._stage = "record"
            model = self._model(now)
            self._record_outage(now)
            self._stage = "check"
            return self._cycle(now, model)
        except Exception as exc:  # the one guard of the cycle: every failure is recorded
            return self._failed(now, exc)

    def _failed(self, now: datetime, exc: Exception) -> CycleOutcome:
        cause = f"{type(exc).__name__}: {exc}"
        stage = "store" if isinstance(exc, StoreUnavailable) else self._stage
        self.metrics.cycle_errors.labels(self.name, stage).inc()
        if isinstance(exc, StoreUnavailable):
            log.error("%s: cycle not recorded, the store is unavailable: %s", self.name, exc)
            self._note_outage(now, exc)
            return CycleOutcome(error=cause)
        log.exception("%s: cycle failed in %s: %s", self.name, stage, cause)
        try:
            stored = self._record(now, "failed", f"{stage}: {cause}"[:2000])
        except Exception as again:
            log.error("%s: the failed cycle could not be recorded: %s", self.name, again)
            if isinstance(again, StoreUnavailable):  # remembered, recorded after recovery
                self._note_outage(now, again)
            return CycleOutcome(error=cause)
        return CycleOutcome(check=stored, error=cause)

    def _note_outage(self, now: datetime, exc: Exception) -> None:
        """Extend the store outage this loop is in (or start one) to ``now``."""
        first = self._outage[0] if self._outage else now
        self._outage = (first, now, str(exc))

    def _record_outage(self, now: datetime) -> None:
        """Record the store outage the previous cycles met (raises StoreUnavailable if the
        store is still down; the outage is then extended by the guard)."""
        if self._outage is None:
            return
        first, last, why = self._outage
        if self._unfinished is not None:
            self.store.finish_run(
                self._unfinished,
                finished_at=now,
                outcome="failed",
                reason=f"database unreachable when the run finished: {why}"[:2000],
            )
            self._unfinished = None
        self._record(
            now,
            "failed",
            f"database unreachable from {first.isoformat()} to {last.isoformat()}"
            f" (cycles not run; last error: {why})"[:2000],
        )
        self._outage = None

    def _cycle(self, now: datetime, model: ModelRecord) -> CycleOutcome:
        if model.champion_version is None:
            self._stage = "optimize"
            return self._bootstrap(now)
        try:
            champion = self.champion()
        except ArtifactError as exc:
            log.error("%s: champion v%s unusable: %s", self.name, model.champion_version, exc)
            self.metrics.champion_loadable.labels(self.name).set(0)
            self.metrics.data_errors.labels(self.name).inc()
            return CycleOutcome(check=self._record(now, "failed", f"champion artifact: {exc}"))
        self.metrics.champion_loadable.labels(self.name).set(1)
        status, reason, result = self._check(now, champion)
        signals = result.signals if result is not None else Signals()
        self._stage = "backfill"
        model_of = self.versions.model_of(champion)
        done = backfill(self.policy, self.source, self.store, model_of, now, self.measure)
        signals.backfilled = [r.summary() for r in done] or None
        if status == "ok":
            signals.labels = label_health(self.policy, self.source, now)
        judgement = Judgement()
        self._stage = "promotion"
        if result is not None:
            judgement = self.promotion.judge(self.policy, now, champion, result)
            signals.guard, signals.shadow = judgement.guard, judgement.shadow
        self._stage = "record"
        stored = self._record(now, status, reason, champion.version, result, signals)
        outcome = CycleOutcome(check=stored)
        self._stage = "promotion"
        if result is None or self.promotion.act(self.policy, now, champion, judgement):
            return outcome  # no verdict to give, or a new champion the next check judges
        self._stage = "decide"
        outcome.decision = decision = self._decide(now)
        record = self.store.add_decision(
            self.name,
            check_id=stored.id,
            at=now,
            fire=decision.fire,
            triggers=decision.triggers,
            reasons=decision.summary,
        )
        self.metrics.export_decision(self.name, decision)
        verdict = "RE-OPTIMIZE" if decision.fire else "hold"
        log.info("%s: decision %s (%s)", self.name, verdict, decision.summary)
        if decision.fire:
            self._stage = "optimize"
            outcome.run = self._run(now, trigger=decision.trigger, decision_id=record.id)
        return outcome

    def _run(self, now: datetime, trigger: str, decision_id: int | None = None) -> RunRecord:
        """Under a dispatcher: queue the run, hand it over and return (the check thread never
        waits for a training); else execute it here."""
        if self.dispatch is None:
            return self.optimize(now, trigger=trigger, decision_id=decision_id)
        run = self.enqueue(now, trigger=trigger, decision_id=decision_id)
        self.dispatch(run)
        return run

    def _bootstrap(self, now: datetime) -> CycleOutcome:
        """Train version 1; when it was promoted, check the window with it at once, so a first
        ``reoptd check`` or a first cycle of ``reoptd run`` shows the drift and metrics (under
        a dispatcher: the first cycle after its promotion)."""
        run = self._run(now, trigger="bootstrap")
        if self.store.model(self.name).champion_version is None:
            return CycleOutcome(run=run)
        try:
            champion = self.champion()
        except ArtifactError as exc:
            log.error("%s: champion v%s unusable: %s", self.name, run.challenger_version, exc)
            return CycleOutcome(run=run)
        status, reason, result = self._check(now, champion)
        signals = result.signals if result is not None else Signals()
        stored = self._record(now, status, reason, champion.version, result, signals)
        return CycleOutcome(check=stored, run=run)

    def _model(self, now: datetime) -> ModelRecord:
        """The model's row, read fresh (a CLI promotion may have changed the champion). The
        policy snapshot is written only when this loop's policy is new, not on every check."""
        if self._snapshot is not self.policy:
            row = self.store.ensure_model(self.policy, now)
            self._snapshot = self.policy  # written: a failed write is retried next cycle
            return row
        return self.store.model(self.name)

    def _check(self, now: datetime, champion: Champion) -> tuple[str, str, CheckResult | None]:
        """Measure the window: (status, reason, result); ``result`` is None unless ``ok``."""
        try:
            seen_as = self.reference(self.policy, self.source, champion, now)
            result = check(self.policy, self.source, seen_as, now)
        except EmptyWindow as exc:
            log.warning("%s: check skipped: %s", self.name, exc)
            return "skipped", str(exc), None
        except DataError as exc:
            log.error("%s: check failed: %s", self.name, exc)
            return "failed", str(exc), None
        if result.data_problem:
            log.error("%s: %s", self.name, result.data_problem)
        for feature, why in result.untested.items():
            log.warning("%s: %s %s", self.name, feature, why)
        drifted = [f for f, d in result.features.items() if d.drifted]
        shown = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items())
        log.info(
            "%s: check v%d rows=%d labelled=%d drift_share=%.2f%s%s",
            self.name,
            champion.version,
            result.rows,
            result.labelled_rows,
            result.drift_share,
            f" drifted=[{', '.join(drifted)}]" if drifted else "",
            f" {shown}" if shown else "",
        )
        return "ok", "", result

    def _record(
        self,
        now: datetime,
        status: str,
        reason: str,
        version: int | None = None,
        result: CheckResult | None = None,
        signals: Signals | None = None,
    ) -> CheckRecord:
        """Store the check, once, with everything the cycle learnt; export it."""
        measured: dict[str, Any] = {}
        if result is not None:
            measured = {
                "rows": result.rows,
                "labelled_rows": result.labelled_rows,
                "drift_share": result.drift_share,
                "dataset_drift": result.dataset_drift,
                "features": {k: v.to_dict() for k, v in result.features.items()},
                "metrics": result.metrics,
                "seconds": result.seconds,
            }
        stored = self.store.add_check(
            self.name,
            at=now,
            window_start=now - self.policy.monitor.window,
            window_end=now,
            status=status,
            reason=reason,
            champion_version=version,
            signals=None if signals is None else signals.to_json(),
            **measured,
        )
        # a window that could not be read is a data error; an unusable artifact (no version) not
        data_error = status == "failed" and version is not None
        self.metrics.export_check(self.name, status, result, signals, data_error=data_error)
        return stored

    def _decide(self, now: datetime) -> Decision:
        state = self.store.state(self.name, now)
        self.metrics.export_thresholds(self.policy, state.champion_metrics)  # `drop` moves
        # a margin over the longest streak: failed and skipped checks do not count towards it
        history = self.store.history(self.name, limit=checks_needed(self.policy) + 10)
        return decide(self.policy, history, state, now)

    # -- re-optimization ------------------------------------------------------------------------

    def enqueue(
        self, now: datetime, trigger: str = "manual", decision_id: int | None = None
    ) -> RunRecord:
        """Write the run as a ``queued`` job holding everything executing it needs: the policy
        snapshot, the data window's end ``now``, the champion version, the trigger. The model's
        queued or running run instead, if it has one: a run is never started twice."""
        model = self._model(now)
        job = {
            "model": self.name,
            "policy": self.policy.model_dump(mode="json", by_alias=True),
            "now": now.isoformat(),
            "champion_version": model.champion_version,
            "trigger": trigger,
            "decision_id": decision_id,
        }
        run = self.store.enqueue_run(
            self.name,
            at=now,
            trigger=trigger,
            job=job,
            champion_version=model.champion_version,
            decision_id=decision_id,
        )
        if run.job is not job and run.job != job:
            # the daemon's cycles meet their own run in flight on every check: not news
            log.log(
                logging.DEBUG if self.dispatch is not None else logging.INFO,
                "%s: run %s is already %s (trigger: %s); not queued again",
                self.name,
                run.id,
                run.outcome,
                run.trigger,
            )
        else:
            log.info("%s: re-optimization queued (run %s, trigger: %s)", self.name, run.id, trigger)
        return run

    def optimize(
        self, now: datetime, trigger: str = "manual", decision_id: int | None = None
    ) -> RunRecord:
        """Queue the run, claim it and execute it in this thread (the CLI, the tests, the
        backtest, a loop without a dispatcher). A run another process is executing is returned
        as it stands."""
        run = self.enqueue(now, trigger=trigger, decision_id=decision_id)
        assert run.id is not None
        if run.outcome == "queued":
            claimed = self.store.claim_run(run_id=run.id)
            if claimed is not None:
                return self.execute(claimed)
            run = self.store.run(self.name, run.id)
        return run

    def execute(self, run: RunRecord, at: datetime | None = None) -> RunRecord:
        """The control plane's part of a claimed run: execute its job's steps on the executor
        (the lease renewed meanwhile), register the challenger, promote it if it won, record how
        the run ended. ``at``: the clock's time as it starts (default the job's ``now``); a run
        that waited in the queue longer than a check interval (a restart, a replica's failover,
        a full executor) learns from the window ending at ``at`` (``window_end``)."""
        assert run.id is not None
        queued = datetime.fromisoformat(run.job["now"]) if run.job.get("now") else run.started_at
        at = queued if at is None else at
        now = queued
        self._unfinished = run.id  # closed after an outage if its final write fails
        log.info(
            "%s: re-optimization started (run %d, trigger: %s)", self.name, run.id, run.trigger
        )
        finished: dict[str, Any] = {"outcome": "failed", "reason": ""}
        lost = threading.Event()
        try:
            policy = self._job_policy(run)
            now = window_end(policy, queued, at)
            if now != queued:
                log.info(
                    "%s: run %d waited %s in the queue (more than a check interval): its data"
                    " window ends now, %s, not when it was queued",
                    self.name,
                    run.id,
                    format_duration(at - queued),
                    at.isoformat(),
                )
            model = self.store.model(self.name)
            if model.champion_version != run.champion_version:
                raise ReoptdError(
                    f"the champion changed from v{run.champion_version} to"
                    f" v{model.champion_version} since run {run.id} was queued; the next"
                    " check decides again"
                )
            champion = self.champion() if model.champion_version is not None else None
            champion_row = self.store.champion(self.name) if champion is not None else None
            source = self.source if policy is self.policy else open_source(policy, self.store)
            with self.store.run_lease(run.id, lost):
                result = run_pipeline(
                    policy,
                    source,
                    champion,
                    now,
                    storage=self.store.optuna_storage,
                    study_prefix=f"reoptd.{self.name}",
                    champion_params=dict(champion_row.params) if champion_row else {},
                    progress=self.progress,
                    executor=self.executor,
                )
            if lost.is_set():
                log.warning(
                    "%s: run %d lost its lease while executing (re-queued elsewhere): its"
                    " result is dropped",
                    self.name,
                    run.id,
                )
                self._unfinished = None
                return self.store.run(self.name, run.id)
            with self.lock:
                version = self.promotion.register(
                    policy, result, now, run.trigger, model.champion_version
                )
                finished.update(
                    challenger_version=version.version, steps=result.steps, seconds=result.seconds
                )
                finished["outcome"], finished["reason"] = self.promotion.place(
                    policy,
                    version.version,
                    won=result.ctx.promote,
                    reason=result.ctx.reason,
                    has_champion=champion is not None,
                    now=at,
                )
        except ReoptdError as exc:  # reoptd's own errors name what went wrong
            finished.update(outcome="failed", reason=str(exc))
        except Exception as exc:  # anything else (sklearn, OS, driver): failed, with the cause
            log.exception("%s: re-optimization crashed", self.name)
            self.metrics.cycle_errors.labels(self.name, "optimize").inc()
            finished.update(outcome="failed", reason=f"{type(exc).__name__}: {exc}"[:2000])
        except BaseException:  # Ctrl-C, SystemExit: close the run (its lease would hold it)
            with contextlib.suppress(Exception):
                self.store.finish_run(run.id, finished_at=at, outcome="failed", reason=INTERRUPTED)
            raise
        run = self.store.finish_run(run.id, finished_at=at, **finished)
        self._unfinished = None
        self.metrics.export_run(self.name, run)
        log.info(
            "%s: re-optimization %s%s: %s",
            self.name,
            run.outcome,
            f" v{run.challenger_version}" if run.challenger_version else "",
            run.reason,
        )
        return run

    def _job_policy(self, run: RunRecord) -> Policy:
        """The policy a run was queued with: this loop's when unchanged, else its snapshot."""
        snapshot = run.job.get("policy")
        if not snapshot or snapshot == self.policy.model_dump(mode="json", by_alias=True):
            return self.policy
        try:
            return Policy.model_validate(snapshot)
        except ValueError as exc:
            raise ReoptdError(
                f"run {run.id}: its policy snapshot no longer validates: {exc}"
            ) from None

    def champion(self) -> Champion:
        """The champion with its reference sample, loaded (and sha256-verified) once per version."""
        return self.versions.champion()


def window_end(policy: Policy, queued: datetime, starts: datetime) -> datetime:
    """Where a run's data window ends: when it was queued (the rows its decision saw), unless it
    starts more than a check interval (``monitor.every``) later: by then a check has seen newer
    rows, and the queued window is stale (it may even have left a stream's retention), so the
    window ends when the run starts."""
    return starts if starts - queued > policy.monitor.every else queued
