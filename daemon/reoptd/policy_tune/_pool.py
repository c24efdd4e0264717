"""Where the search's backtests run: the tuner's thread, worker processes of this machine, or
tasks on a Ray cluster, as ``REOPTD_EXECUTOR`` (``local``, ``inline``, ``ray``) and ``--jobs``
say.

The tuner keeps the study: it asks Optuna for each trial, hands the candidate to a pool by value
(a ``Work``) and tells the study what came back, so only the tuner's process touches the study's
storage. A pool runs up to ``slots`` backtests at once; ``wait`` returns those that finished (at
least one), each with its scores or why it failed: the backtest's ``ReoptdError``, or its
worker's death (a killed process, a lost Ray worker), which fails that trial only.

Each worker keeps one ``BacktestCache`` for all its backtests, on a directory of the tuner's
scratch space, so a retrain one worker did is read back, not redone, by the others. Inside a
worker, a backtest's own re-optimizations run in its thread (``run_backtest`` hands its loop an
in-thread executor whatever ``REOPTD_EXECUTOR`` says): the setting picks where trials run, not
where a trial's runs do.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import traceback
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from reoptd.backtest import BacktestCache
from reoptd.errors import ReoptdError, first_line
from reoptd.policy_tune._errors import TuneError
from reoptd.policy_tune._trial import Outcome, Work, backtest
from reoptd.processes import how_it_ended, stop
from reoptd.settings import Settings
from reoptd.threads import usable_cores

log = logging.getLogger("reoptd.policy_tune")

#: seconds a stopped worker process gets to exit before it is killed
GRACE = 5.0


@dataclass(frozen=True)
class Done:
    """A finished backtest: its ``Outcome``, or ``error`` saying why there is none."""

    key: int
    outcome: Outcome | None
    error: str | None = None


class Pool(ABC):
    """Runs ``Work`` items, ``slots`` at once; ``submit`` queues one under a caller's key."""

    slots: int = 1

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def submit(self, key: int, work: Work) -> None: ...

    @abstractmethod
    def wait(self) -> list[Done]:
        """Block until at least one submitted backtest finished; [] when none is left."""

    def close(self) -> None:  # noqa: B027 - optional: a pool with nothing to stop
        """Stop every worker (a backtest still running is abandoned)."""


class InlinePool(Pool):
    """One backtest at a time in the tuner's thread, through one in-memory cache: the
    sequential search (``REOPTD_EXECUTOR=inline`` or ``--jobs 1``). A bug (an exception that is
    not a ``ReoptdError``) stops the search, as any error of the tuner's own code does."""

    def __init__(self) -> None:
        self.cache = BacktestCache()
        self._queue: deque[tuple[int, Work]] = deque()

    def describe(self) -> str:
        return "one at a time in this process"

    def submit(self, key: int, work: Work) -> None:
        self._queue.append((key, work))

    def wait(self) -> list[Done]:
        if not self._queue:
            return []
        key, work = self._queue.popleft()
        try:
            return [Done(key, backtest(work, self.cache))]
        except ReoptdError as exc:
            return [Done(key, None, str(exc))]


# -- worker processes of this machine ----------------------------------------------------------


class _Worker:
    def __init__(self, mp: Any, cache: Path, number: int) -> None:
        self.conn, child = mp.Pipe()
        self.process = mp.Process(
            target=_serve,
            args=(child, cache),
            name=f"reoptd-policy-tune-{number}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.key: int | None = None  # the backtest it runs
        self.work: Work | None = None

    def died(self) -> str:
        where = self.work.where if self.work else "a backtest"
        how = how_it_ended(self.process, GRACE)
        return f"{where}: its worker process {how} before the backtest finished"

    def stop(self) -> None:
        if self.process.is_alive() and self.key is None:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.process.join(GRACE)
        stop(self.process, GRACE)
        self.conn.close()


class ProcessPool(Pool):
    """``slots`` worker processes, started on first use and each kept for many backtests; one
    that dies fails its backtest and is replaced."""

    def __init__(self, slots: int, cache: Path) -> None:
        self.slots = slots
        self.cache = cache
        methods = multiprocessing.get_all_start_methods()
        self._mp = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        if "forkserver" in methods:
            # the fork server imports the backtest once (4-5 s: evidently, sklearn, pandas);
            # each worker forked from it starts in milliseconds, not with its own imports
            self._mp.set_forkserver_preload([__name__])
            from multiprocessing import forkserver

            forkserver.ensure_running()  # it imports while the tuner opens the study
        self._workers: list[_Worker] = []
        self._queue: deque[tuple[int, Work]] = deque()
        self._started = 0

    def describe(self) -> str:
        return f"{self.slots} at a time in worker processes"

    def submit(self, key: int, work: Work) -> None:
        self._queue.append((key, work))
        self._dispatch()

    def _dispatch(self) -> None:
        while self._queue:
            # an idle worker that exited (it had sent its last result) is replaced, not used
            for worker in [w for w in self._workers if w.key is None]:
                if not worker.process.is_alive():
                    self._workers.remove(worker)
                    worker.stop()
            idle = next((w for w in self._workers if w.key is None), None)
            if idle is None:
                if len(self._workers) >= self.slots:
                    return
                self._started += 1
                idle = _Worker(self._mp, self.cache, self._started)
                self._workers.append(idle)
            key, work = self._queue.popleft()
            try:
                idle.conn.send((key, work))
            except OSError:  # it died since: another worker takes the backtest
                self._queue.appendleft((key, work))
                self._workers.remove(idle)
                idle.stop()
                continue
            idle.key, idle.work = key, work

    def wait(self) -> list[Done]:
        busy = [w for w in self._workers if w.key is not None]
        if not busy:
            return []
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
        done: list[Done] = []
        for worker in busy:
            if worker.conn not in ready and worker.process.sentinel not in ready:
                continue
            key = worker.key
            assert key is not None
            try:
                if not worker.conn.poll():
                    raise EOFError
                answer = worker.conn.recv()
            except (EOFError, OSError):
                done.append(Done(key, None, worker.died()))
                self._workers.remove(worker)
                worker.stop()
                continue
            worker.key, worker.work = None, None
            done.append(Done(*answer))
        self._dispatch()
        return done

    def close(self) -> None:
        self._queue.clear()
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.stop()


def _serve(conn: Connection, cache: Path) -> None:
    """A worker process: backtest each ``(key, Work)`` received, answer ``(key, outcome,
    error)``; stop at ``None`` or when the tuner is gone."""
    # Ctrl-C reaches the whole process group: the tuner handles it and stops its workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    store = BacktestCache(cache)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        key, work = message
        try:
            answer: tuple[int, Outcome | None, str | None] = (key, backtest(work, store), None)
        except ReoptdError as exc:
            answer = (key, None, str(exc))
        except Exception as exc:
            log.error("%s failed:\n%s", work.where, traceback.format_exc())
            answer = (key, None, f"{work.where}: {type(exc).__name__}: {exc}")
        try:
            conn.send(answer)
        except OSError:
            return


# -- Ray ---------------------------------------------------------------------------------------


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise TuneError(
            "REOPTD_EXECUTOR=ray needs Ray: pip install 'reoptd[ray]' (or choose"
            " REOPTD_EXECUTOR=local, or --jobs 1)"
        ) from None
    return ray


class RayPool(Pool):
    """Each backtest a task on the Ray cluster at ``address`` asking ``cpus`` CPUs, ``slots`` at
    once (default: as many as the cluster's CPUs hold). The history's files go to the cluster
    once, by value: a worker on another machine writes them to its own temporary directory."""

    def __init__(self, address: str, cpus: float, slots: int | None, cache: Path) -> None:
        ray = _ray()
        self._owned = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:
                raise TuneError(
                    f"REOPTD_RAY_ADDRESS={address}: cannot connect to the Ray cluster:"
                    f" {first_line(exc)}"
                ) from None
            self._owned = True
        self.address = address
        self.slots = slots or max(1, int(ray.cluster_resources().get("CPU", 0) // cpus))
        self.cache = cache
        self._task = ray.remote(_ray_backtest).options(num_cpus=cpus, max_retries=0)
        self._files: dict[Path, list[Any]] = {}
        self._running: dict[Any, tuple[int, Work]] = {}
        self._queue: deque[tuple[int, Work]] = deque()

    def describe(self) -> str:
        return f"{self.slots} at a time as tasks on the Ray cluster at {self.address}"

    def submit(self, key: int, work: Work) -> None:
        self._queue.append((key, work))
        self._dispatch()

    def _dispatch(self) -> None:
        ray = _ray()
        while self._queue and len(self._running) < self.slots:
            key, work = self._queue.popleft()
            if work.file not in self._files:  # in a list: the task fetches it only if needed
                self._files[work.file] = [ray.put(work.file.read_bytes())]
            ref = self._task.remote(work, self._files[work.file], str(self.cache))
            self._running[ref] = (key, work)

    def wait(self) -> list[Done]:
        if not self._running:
            return []
        ray = _ray()
        ready, _ = ray.wait(list(self._running), num_returns=1)
        done: list[Done] = []
        for ref in ready:
            key, work = self._running.pop(ref)
            try:
                outcome, error = ray.get(ref)
            except ray.exceptions.RayError as exc:
                outcome, error = None, f"{work.where}: its Ray task failed: {first_line(exc)}"
            done.append(Done(key, outcome, error))
        self._dispatch()
        return done

    def close(self) -> None:
        ray = _ray()
        self._queue.clear()
        for ref in list(self._running):
            try:
                ray.cancel(ref, force=True)
            except Exception as exc:  # already finished, or the cluster is gone
                log.debug("cancelling a backtest's Ray task: %s", exc)
        self._running.clear()
        if self._owned:
            ray.shutdown()
            self._owned = False


#: a Ray worker's cache, by directory: one for all the backtests the worker process runs
_CACHES: dict[str, BacktestCache] = {}


def _ray_backtest(work: Work, data: list[Any], cache: str) -> tuple[Outcome | None, str | None]:
    """A backtest's Ray task: on a machine without ``work.file``, its bytes (``data[0]``) are
    written to a temporary file first."""
    import ray

    if not work.file.exists():
        folder = Path(tempfile.gettempdir()) / "reoptd-policy-tune-data"
        folder.mkdir(parents=True, exist_ok=True)
        local = folder / f"{data[0].hex()}{work.file.suffix}"
        if not local.exists():
            partial = local.with_name(f"{local.name}.{os.getpid()}.tmp")
            partial.write_bytes(ray.get(data[0]))
            partial.replace(local)
        work = work.on(local)
    if cache not in _CACHES:
        _CACHES[cache] = BacktestCache(Path(cache))
    try:
        return backtest(work, _CACHES[cache]), None
    except ReoptdError as exc:
        return None, str(exc)


# -- choosing one ------------------------------------------------------------------------------


def open_pool(executor: str | None, jobs: int | None, scratch: Path) -> Pool:
    """The pool ``executor`` (default: ``REOPTD_EXECUTOR``) and ``jobs`` (backtests at once;
    default: the local executor's ``slots`` or usable cores, the Ray cluster's room) ask for.
    ``jobs`` 1 is the sequential search in this thread on any executor. ``scratch``: the
    tuner's temporary directory (the workers' shared cache goes there)."""
    settings = Settings()
    kind = executor or settings.executor
    kind = "local" if kind == "process" else kind
    if jobs is not None and jobs < 1:
        raise TuneError(f"--jobs must be at least 1, got {jobs}")
    if kind == "inline":
        if jobs not in (None, 1):
            raise TuneError(
                f"--jobs {jobs}: REOPTD_EXECUTOR=inline runs trials one at a time in this"
                " process; choose REOPTD_EXECUTOR=local (worker processes) or ray"
            )
        return InlinePool()
    if kind not in ("local", "ray"):
        raise TuneError(f"REOPTD_EXECUTOR: unknown executor {kind!r} (local, inline, ray)")
    if jobs == 1:
        return InlinePool()
    if kind == "local":
        slots = jobs or settings.slots or usable_cores()
        return InlinePool() if slots == 1 else ProcessPool(slots, scratch / "cache")
    return RayPool(settings.ray_address, settings.ray_cpus, jobs, scratch / "cache")
