"""The live daemon: APScheduler runs each model's cycle; prometheus-client serves ``/metrics``.

The service is the control plane: the checks run on the scheduler's threads; a decision that
fires queues a run and the ``Dispatcher`` executes it on the executor (``local``: a pool of
worker processes) while the checks go on. Several services (replicas) may share one database:
each model is checked by the one replica that owns it (``Store.own_model``), and a replica
that dies leaves its models to the others at their next tick (its process lease gone).

Every collaborator is an argument (loops, clock, metrics), so the tests build a service with a
simulated clock and a private metrics registry and drive it like the real one.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import start_http_server

from reoptd.clock import Clock, SystemClock
from reoptd.cycle import ModelLoop
from reoptd.cycle.dispatch import Dispatcher
from reoptd.errors import ModelBusy, ReoptdError
from reoptd.metrics import Metrics
from reoptd.optimize import Executor
from reoptd.store import HEARTBEAT

if TYPE_CHECKING:
    from reoptd.api import ApiServer
    from reoptd.store import Store

log = logging.getLogger("reoptd.service")

#: APScheduler's warning for a job whose previous run still runs: it prints the job with a
#: wall-clock "next run" beside the daemon's simulated times. The service says it instead.
_MAX_INSTANCES_WARNING = 'Execution of job "%s" skipped: maximum number of running instances'


class _NoMaxInstancesWarning(logging.Filter):
    """Drops APScheduler's max-instances warning, and only it, from the service's scheduler
    logger (the service logs and counts the skipped check itself)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_MAX_INSTANCES_WARNING)


#: The logger of the service's schedulers: a child of APScheduler's own, so every other message
#: follows the operator's logging configuration of ``apscheduler``.
_scheduler_log = logging.getLogger("apscheduler.scheduler.reoptd")
_scheduler_log.addFilter(_NoMaxInstancesWarning())


def stagger(index: int, count: int, every: float) -> timedelta:
    """When the ``index``-th of ``count`` models first checks: spread over the first interval
    (at most a minute), so a thousand models do not all fall due in the same second, every
    interval, and wait for each other on the scheduler's workers. One model starts at once."""
    return timedelta(seconds=min(every, 60.0) * index / max(count, 1))


class Service:
    def __init__(
        self,
        loops: list[ModelLoop],
        clock: Clock,
        metrics: Metrics,
        *,
        metrics_host: str = "127.0.0.1",
        metrics_port: int = 9464,
        workers: int = 4,
        api: ApiServer | None = None,
    ) -> None:
        self.loops = loops
        self.clock = clock
        self.metrics = metrics
        self.metrics_host = metrics_host
        self.metrics_port = metrics_port
        self._stop = threading.Event()
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.api = api  # the HTTP API, started after the scheduler and stopped before it
        self._owned: set[str] = set()  # the models this replica checks now
        self._owned_lock = threading.Lock()
        # queued runs go to the executors on runner threads: a check never waits for a training
        self.dispatcher = Dispatcher(loops, clock, owned=lambda: self.owned)
        for loop in loops:
            loop.dispatch = self.dispatcher.poke
        # One job per model; max_instances=1 means a model never runs two cycles at once, and
        # coalesce=True folds the runs missed while a long re-optimization held it into one.
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            logger=_scheduler_log,
        )
        # checks skipped in a row while a model's cycle runs, and when (daemon clock) that
        # cycle started; the scheduler's thread and the workers share them
        self._busy = threading.Lock()
        self._skipped: dict[str, int] = {}
        self._started: dict[str, datetime] = {}

    @property
    def owned(self) -> set[str]:
        """The models this replica checks now (``/readyz`` and ``reoptd_model_owned``)."""
        with self._owned_lock:
            return set(self._owned)

    def _own(self, loop: ModelLoop) -> bool:
        """Whether this replica checks ``loop``'s model now: it owns it, or takes it over from
        a replica that is gone."""
        holder = loop.store.own_model(loop.name)
        with self._owned_lock:
            if holder is None:
                if loop.name not in self._owned:
                    log.info("%s: checked by this replica (%s)", loop.name, loop.store.owner)
                self._owned.add(loop.name)
            else:
                if loop.name in self._owned:
                    log.warning("%s: now checked by replica %s", loop.name, holder)
                self._owned.discard(loop.name)
        self.metrics.model_owned.labels(loop.name).set(1 if holder is None else 0)
        return holder is None

    @property
    def metrics_url(self) -> str:
        port = self._server.server_port if self._server is not None else self.metrics_port
        return f"http://{self.metrics_host}:{port}/metrics"

    def start(self) -> None:
        try:
            self._server, self._server_thread = start_http_server(
                self.metrics_port, addr=self.metrics_host, registry=self.metrics.registry
            )
        except OSError as exc:
            raise ReoptdError(
                f"cannot serve /metrics on {self.metrics_host}:{self.metrics_port}: "
                f"{exc.strerror} (another reoptd running? choose a port with --metrics-port "
                "or REOPTD_METRICS_PORT)"
            ) from None
        self._heartbeat()  # the lease and the clock reading exist before the first cycle
        for store in self._stores():  # files of runs cut off by a kill or a crash
            try:
                store.collect_artifacts()
            except (ReoptdError, OSError) as exc:
                log.warning("cannot collect orphaned artifacts: %s", exc)
        self.scheduler.add_job(
            self._heartbeat,
            IntervalTrigger(seconds=HEARTBEAT, timezone=UTC),
            id="heartbeat",
            name="lease and clock heartbeat",
        )
        for loop in self.loops:
            loop.start()
        # the first checks are staggered from now, after every model started: starting a
        # thousand (their series, their runs in the store) takes seconds, which would make the
        # first ones late before the scheduler even runs
        first = datetime.now(UTC)
        for index, loop in enumerate(self.loops):
            every = self.clock.real_seconds(loop.policy.monitor.every)
            self.scheduler.add_job(
                self._cycle,
                self._trigger(loop),
                args=[loop],
                id=loop.name,
                name=f"check {loop.name}",
                # APScheduler's own timing is wall-clock; the cycle's "now" comes from self.clock.
                next_run_time=first + stagger(index, len(self.loops), every),
            )
            log.info(
                "scheduled %s: a check every %s (%.1f s real time)",
                loop.name,
                loop.policy.monitor.every,
                every,
            )
        for executor in self._executors():
            executor.start()
        self.scheduler.add_job(
            self._dispatch,
            IntervalTrigger(seconds=HEARTBEAT, timezone=UTC),
            id="dispatch",
            name="expire leases, claim queued runs",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_listener(self._submitted, EVENT_JOB_SUBMITTED)
        self.scheduler.add_listener(self._max_instances, EVENT_JOB_MAX_INSTANCES)
        self.scheduler.start()
        log.info("metrics on %s", self.metrics_url)
        if self.api is not None:
            self.api.start()

    def _trigger(self, loop: ModelLoop) -> IntervalTrigger:
        every = self.clock.real_seconds(loop.policy.monitor.every)
        return IntervalTrigger(seconds=max(every, 0.1), timezone=UTC)

    def _stores(self) -> list[Store]:
        return list({id(loop.store): loop.store for loop in self.loops}.values())

    def _heartbeat(self) -> None:
        """Renew the daemon's lease and record its clock (the CLI stamps its actions with it;
        ``speed`` None: the system clock)."""
        speed = None if isinstance(self.clock, SystemClock) else getattr(self.clock, "speed", 0.0)
        for store in self._stores():
            try:
                store.heartbeat(clock_at=self.clock.now(), speed=speed)
            except ReoptdError as exc:  # the database is away: the next beat retries
                log.warning("cannot record the daemon's heartbeat: %s", exc)

    def _dispatch(self) -> None:
        """Re-queue the runs of dead executors, then claim what the executors have room for."""
        if self._stop.is_set():
            return
        self.dispatcher.expire()
        self.dispatcher.poke()
        self.metrics.runs_executing.set(self.dispatcher.running)

    def _cycle(self, loop: ModelLoop) -> None:
        if self._stop.is_set():
            return
        self.metrics.jobs_running.inc()
        self._resume(loop.name)
        try:
            if not self._own(loop):  # another live replica checks this model
                return
            # one cycle per model across processes: `reoptd check`/`optimize` may hold it;
            # within this process, a run's completion waits for the cycle (and conversely)
            with loop.lock, loop.store.model_lock(loop.name):
                old_every = loop.policy.monitor.every
                if loop.reload_if_changed() and loop.policy.monitor.every != old_every:
                    self.scheduler.reschedule_job(loop.name, trigger=self._trigger(loop))
                    log.info("%s: now checking every %s", loop.name, loop.policy.monitor.every)
                loop.cycle(self.clock.now())
        except ModelBusy as exc:
            self.metrics.checks_skipped.labels(loop.name).inc()
            log.info("%s: cycle skipped: %s", loop.name, exc)
        except Exception:  # one model's failure must never stop the others
            log.exception("%s: cycle crashed; the daemon goes on", loop.name)
        finally:
            self.metrics.jobs_running.dec()

    def _resume(self, name: str) -> None:
        """A cycle of ``name`` starts: note when (daemon clock), and end a run of skipped checks
        with one line saying how many there were."""
        now = self.clock.now()
        with self._busy:
            self._started[name] = now
            skipped = self._skipped.pop(name, 0)
        if skipped:
            log.info("%s: checks resume at %s after %d skipped", name, _at(now), skipped)

    def _max_instances(self, event: JobSubmissionEvent) -> None:
        """A model's check came due while its previous cycle still ran (``max_instances=1``):
        count it; log the first of a run of them, in the daemon's clock."""
        loop = next((loop for loop in self.loops if loop.name == event.job_id), None)
        if loop is None:  # the heartbeat: the previous beat still waits for the database
            log.info("heartbeat skipped: the previous one still runs (is the database slow?)")
            return
        self.metrics.checks_skipped.labels(loop.name).inc()
        now = self.clock.now()
        with self._busy:
            skipped = self._skipped[loop.name] = self._skipped.get(loop.name, 0) + 1
            started = self._started.get(loop.name)
        if skipped == 1:  # INFO: expected while a re-optimization runs; the alerts watch age
            since = f" (started {_at(started)})" if started is not None else ""
            log.info(
                "%s: check at %s skipped: the previous cycle%s still runs; further skips are"
                " counted in reoptd_checks_skipped_total until it ends",
                loop.name,
                _at(now),
                since,
            )

    def _submitted(self, event: JobSubmissionEvent) -> None:
        now = datetime.now(UTC)  # the scheduler's own lag is wall-clock by nature
        for scheduled in event.scheduled_run_times:
            self.metrics.scheduler_lag.observe(max(0.0, (now - scheduled).total_seconds()))

    def _executors(self) -> list[Executor]:
        return list({id(loop.executor): loop.executor for loop in self.loops}.values())

    def stop(self) -> None:
        """Stop scheduling, stop the running re-optimizations (their runs fail with the reason;
        the process executor terminates them at once), let the cycles record that and finish,
        close the metrics server."""
        self._stop.set()
        if self.api is not None:
            self.api.stop()
        self.dispatcher.close()  # no run claimed from now on: the queued ones wait for a replica
        for executor in self._executors():
            executor.shutdown()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.dispatcher.shutdown()  # the cancelled runs are recorded as failed
        for loop in self.loops:  # another replica takes them at its next tick
            if loop.name in self.owned:
                try:
                    loop.store.disown_model(loop.name)
                except ReoptdError as exc:
                    log.warning("%s: cannot give up the model: %s", loop.name, exc)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        log.info("stopped")

    def request_stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("received %s, stopping", signal.Signals(signum).name)
        self._stop.set()

    def run(self, exit_after: float | None = None) -> None:
        """Start, block until SIGTERM/SIGINT or ``exit_after`` seconds, then stop cleanly."""
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.start()
            self._stop.wait(timeout=exit_after)
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _at(when: datetime) -> str:
    """A daemon-clock time for the log (the clock is simulated in the demo and in replays)."""
    return when.isoformat(sep=" ", timespec="seconds")
