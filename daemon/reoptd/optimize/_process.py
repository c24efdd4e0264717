"""The daemon's executor: each run's steps in a child process, stopped at a step's budget.

Why a process: a scikit-learn fit (or a torch epoch loop) cannot be interrupted from another
thread, so ``max_iter: 1000000000000`` would hold a worker for ever and the daemon could not
stop. A child process can be terminated. Why the standard library's ``multiprocessing`` and not
a pool (``concurrent.futures``, loky, pebble): a pool cannot stop one running task (loky and
``ProcessPoolExecutor`` only stop all workers; pebble's timeout covers a whole task), and a
step's budget needs the child to say when each step starts, over a pipe of our own.

The children are forked by a *forkserver* (``spawn`` where there is none): a single-threaded
process that imports the heavy libraries once (pandas, scikit-learn, Optuna, Evidently) and
forks a fresh child per run, so a run starts in a fraction of a second instead of re-importing
them, and ``fork`` never copies the daemon's threads or locks. A run's inputs go to the child by
value (the ``RunContext``: policy, rows, the champion as artifact bytes); it sends back its log
records, a message as each step starts, and the outcome (the challenger as artifact bytes). The
parent enforces the deadline: ``terminate``, then ``kill``.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

import pandas as pd

from reoptd.errors import OptimizeError, ReoptdError
from reoptd.models import load_model
from reoptd.monitor import Champion
from reoptd.optimize._base import RunContext
from reoptd.optimize._runner import Execution, Executor
from reoptd.policy import Policy, format_duration
from reoptd.processes import how_it_ended, stop
from reoptd.threads import thread_budget, usable_cores

log = logging.getLogger("reoptd.optimize")

#: what the forkserver imports once, so that each run's child starts without importing them
PRELOAD = [
    "__main__",  # imported once by the server, not by every child (multiprocessing's default)
    "reoptd.optimize._process",
    "reoptd.optimize._pipeline",
    "reoptd.optimize._retrain",
    "reoptd.optimize._tune",
    "reoptd.optimize._validate",
    "reoptd.models.sklearn",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "optuna.storages",
]
#: seconds a terminated child gets to exit before it is killed
GRACE = 2.0
#: how often a waiting parent looks for a cancellation
POLL = 0.2


@dataclass(frozen=True)
class Job:
    """A run's inputs, by value: what the child needs to rebuild the ``RunContext``."""

    policy: Policy
    now: datetime
    train: pd.DataFrame
    holdout: pd.DataFrame
    champion_version: int | None
    champion_bytes: bytes | None
    champion_trained_until: datetime | None
    storage: str | None
    study_prefix: str
    champion_params: dict[str, Any]
    progress: bool
    log_level: int
    threads: int

    @classmethod
    def of(cls, ctx: RunContext, threads: int | None = None) -> Job:
        """``ctx`` by value; ``threads``: the slot's BLAS/OpenMP budget (default: the whole
        machine's, ``thread_budget()``)."""
        champion = ctx.champion
        return cls(
            policy=ctx.policy,
            now=ctx.now,
            train=ctx.train,
            holdout=ctx.holdout,
            champion_version=None if champion is None else champion.version,
            champion_bytes=None if champion is None else champion.model.to_bytes(),
            champion_trained_until=None if champion is None else champion.trained_until,
            storage=ctx.storage,
            study_prefix=ctx.study_prefix,
            champion_params=ctx.champion_params,
            progress=ctx.progress,
            # the child sends what the parent may log; the parent's loggers filter again
            log_level=min(logging.getLogger().getEffectiveLevel(), log.getEffectiveLevel()),
            threads=thread_budget() if threads is None else threads,
        )

    def context(self) -> RunContext:
        champion = None
        if self.champion_bytes is not None:
            assert self.champion_version is not None
            model = load_model(self.champion_bytes)
            # the steps use the champion's model, version and training end, not its reference
            champion = Champion(
                self.champion_version, model, pd.DataFrame(), self.champion_trained_until
            )
        return RunContext(
            policy=self.policy,
            now=self.now,
            train=self.train,
            holdout=self.holdout,
            champion=champion,
            storage=self.storage,
            study_prefix=self.study_prefix,
            champion_params=self.champion_params,
            progress=self.progress,
        )


@dataclass(frozen=True)
class Outcome:
    """What the child's steps left on its ``RunContext``, by value."""

    steps: dict[str, dict[str, Any]]
    challenger_bytes: bytes | None
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)
    promote: bool = False
    reason: str = ""
    compressing_champion: bool = False
    compressed: bool = False
    compress_reason: str = ""

    @classmethod
    def of(cls, ctx: RunContext, steps: dict[str, dict[str, Any]]) -> Outcome:
        return cls(
            steps=steps,
            challenger_bytes=None if ctx.challenger is None else ctx.challenger.to_bytes(),
            challenger_metrics=ctx.challenger_metrics,
            champion_metrics=ctx.champion_metrics,
            promote=ctx.promote,
            reason=ctx.reason,
            compressing_champion=ctx.compressing_champion,
            compressed=ctx.compressed,
            compress_reason=ctx.compress_reason,
        )

    def apply(self, ctx: RunContext) -> None:
        data = self.challenger_bytes
        ctx.challenger = None if data is None else load_model(data)
        ctx.challenger_metrics = self.challenger_metrics
        ctx.champion_metrics = self.champion_metrics
        ctx.promote, ctx.reason = self.promote, self.reason
        ctx.compressing_champion, ctx.compressed = self.compressing_champion, self.compressed
        ctx.compress_reason = self.compress_reason


class _ProcessExecution(Execution):
    def __init__(
        self,
        ctx: RunContext,
        mp: multiprocessing.context.BaseContext,
        done: Callable[[_ProcessExecution], None],
        threads: int,
    ) -> None:
        self.ctx = ctx
        self._done = done
        self._cancelled: str | None = None
        self._wake = threading.Event()
        receiver, sender = mp.Pipe(duplex=False)
        self._conn: Connection = receiver
        self._sender: Connection | None = sender
        self._process: BaseProcess = mp.Process(  # type: ignore[attr-defined]
            target=_child,
            args=(Job.of(ctx, threads), sender),
            name=f"reoptd-run-{ctx.policy.model}",
            daemon=True,
        )

    def start(self) -> None:
        ctx, sender = self.ctx, self._sender
        assert sender is not None
        started = time.perf_counter()
        self._process.start()
        sender.close()  # the child holds the other end: EOF here when it exits
        self._sender = None
        log.debug(
            "%s: run process %s started in %.2fs",
            ctx.policy.model,
            self._process.pid,
            time.perf_counter() - started,
        )

    def cancel(self, reason: str) -> None:
        self._cancelled = reason
        self._wake.set()

    def done(self) -> bool:
        return not self._process.is_alive()

    def result(self) -> dict[str, dict[str, Any]]:
        try:
            return self._supervise()
        finally:
            self._stop()
            self._conn.close()
            self._done(self)

    def _supervise(self) -> dict[str, dict[str, Any]]:
        model = self.ctx.policy.model
        step, budget, deadline = "", 0.0, float("inf")
        while True:
            if self._cancelled is not None:
                raise OptimizeError(self._cancelled)
            now = time.monotonic()
            if now >= deadline:
                raise OptimizeError(
                    f"{step} exceeded its budget of {format_duration(timedelta(seconds=budget))}:"
                    " stopped; the champion is kept"
                )
            ready = wait([self._conn, self._process.sentinel], min(POLL, deadline - now))
            if self._conn in ready:
                try:
                    kind, payload = self._conn.recv()
                except EOFError:
                    raise OptimizeError(self._died()) from None
                if kind == "log":
                    _forward(payload)
                elif kind == "step":
                    step, budget = payload
                    deadline = time.monotonic() + budget
                    log.debug("%s: step %s started (budget %gs)", model, step, budget)
                elif kind == "error":
                    raise OptimizeError(payload)
                elif kind == "outcome":
                    assert isinstance(payload, Outcome)
                    payload.apply(self.ctx)
                    return payload.steps
            elif self._process.sentinel in ready:
                raise OptimizeError(self._died())

    def _died(self) -> str:
        return f"the run's process {how_it_ended(self._process, GRACE)} before it finished"

    def _stop(self) -> None:
        stop(self._process, GRACE)


class LocalProcessExecutor(Executor):
    """The ``local`` executor: each run in a child process of this machine, ``slots`` at once
    (default: one per usable core), each child's BLAS/OpenMP pools capped at its share of the
    cores (``thread_budget(slots)``); a step over its budget, or a run still going when the
    daemon stops, is terminated (then killed); a crash or an OOM kill fails that run only.

    ``claims`` is twice ``slots``: a run's share of work in the daemon (reading its window,
    sending its rows, registering the challenger, promoting it) takes about as long as a small
    model's steps, and a slot held through it leaves its core idle (a drift storm of 100 small
    runs took twice their CPU over the cores). So ``submit`` waits for a free slot, and a slot is
    freed as soon as the child has sent its outcome, before the daemon records it."""

    name = "local"

    def __init__(self, slots: int | None = None) -> None:
        self.slots = max(1, slots if slots is not None else usable_cores())
        self.threads = thread_budget(concurrent=self.slots)
        methods = multiprocessing.get_all_start_methods()
        self.method = "forkserver" if "forkserver" in methods else "spawn"
        self._mp = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            self._mp.set_forkserver_preload(PRELOAD)
        self._lock = threading.Condition()
        self._running: set[_ProcessExecution] = set()
        self._closed = False

    @property
    def capacity(self) -> int:
        return self.slots

    @property
    def claims(self) -> int:
        return 2 * self.slots

    def start(self) -> None:
        if self.method == "forkserver":
            from multiprocessing import forkserver

            forkserver.ensure_running()  # it imports PRELOAD while the first checks run

    def submit(self, ctx: RunContext) -> Execution:
        with self._lock:
            # a free slot (more runs are claimed than there are slots: see ``claims``)
            self._lock.wait_for(lambda: self._closed or len(self._running) < self.slots)
            if self._closed:
                raise OptimizeError("not started: the daemon is stopping")
            execution = _ProcessExecution(ctx, self._mp, self._forget, self.threads)
            self._running.add(execution)
        try:
            # outside the lock: the first start waits for the forkserver's imports
            execution.start()
        except BaseException:
            self._forget(execution)
            raise
        return execution

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running)
            self._lock.notify_all()  # the runs waiting for a slot start no process
        for execution in running:
            execution.cancel("stopped: the daemon is shutting down")

    def _forget(self, execution: _ProcessExecution) -> None:
        with self._lock:
            self._running.discard(execution)
            self._lock.notify()  # its slot is free


# -- the child --------------------------------------------------------------------------------


class _Channel:
    """The child's end of the pipe, shared by the steps' threads (Optuna's ``n_jobs``)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, kind: str, payload: Any) -> None:
        with self.lock:
            self.conn.send((kind, payload))


class _Forward(logging.Handler):
    """Sends each log record of a run's worker, as plain fields, to the daemon (``send``: the
    pipe of a child process here, the message queue of a Ray task in ``_ray.py``), where
    ``_forward`` logs it again."""

    def __init__(self, send: Callable[[str, Any], None]) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = dict(record.__dict__)
            fields["msg"], fields["args"] = record.getMessage(), None
            if record.exc_info:
                fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
            fields["exc_info"] = None
            self.send("log", fields)
        except Exception:  # a log record must never fail the run
            self.handleError(record)


def _forward(fields: dict[str, Any]) -> None:
    record = logging.makeLogRecord(fields)
    logger = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


def _orphan_watch(conn: Connection) -> None:
    """Exit when the daemon is gone (kill -9): a runaway step must not outlive it. Not by the
    parent's pid: the forkserver, this process's parent, outlives the daemon while any child
    holds its "alive" pipe. The daemon alone holds the reading end of ``conn``, and polling a
    pipe's writing end reports POLLERR once no reader is left."""
    if not hasattr(select, "poll"):
        return
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLOUT)
    while True:
        time.sleep(1.0)
        for _fd, events in poller.poll(0):
            if events & (select.POLLERR | select.POLLHUP):
                os._exit(3)


def _child(job: Job, conn: Connection) -> None:
    """The run's process: rebuild the context, run the steps, send the outcome."""
    channel = _Channel(conn)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_Forward(channel.send))
    root.setLevel(job.log_level)
    threading.Thread(target=_orphan_watch, args=(conn,), name="orphan-watch", daemon=True).start()
    from threadpoolctl import threadpool_limits

    from reoptd.optimize._pipeline import run_steps

    try:
        with threadpool_limits(limits=job.threads):
            if job.policy.train.family == "torch":
                import torch

                torch.set_num_threads(job.threads)
            ctx = job.context()
            steps = run_steps(ctx, on_step=lambda *started: channel.send("step", started))
            outcome = Outcome.of(ctx, steps)
    except ReoptdError as exc:
        channel.send("error", str(exc))
    except Exception as exc:
        logging.getLogger("reoptd.optimize").error(
            "%s: run failed:\n%s", job.policy.model, traceback.format_exc()
        )
        channel.send("error", f"{type(exc).__name__}: {exc}")
    else:
        channel.send("outcome", outcome)
    finally:
        conn.close()
