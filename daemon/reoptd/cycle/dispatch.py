"""The control plane's side of runs: queued runs go to the executor without a check waiting.

A check whose decision fires queues the run (``ModelLoop.enqueue``) and calls ``poke``; the
cycle then returns. ``poke`` claims queued runs of the models this replica checks, as many as
the executors' ``capacity`` leaves room for, and hands each to a runner thread, which waits on
the executor (a child process for ``local``) and records the result through
``ModelLoop.execute`` — registering the challenger and promoting it is done here, in the
daemon, never by the executor. Who calls it: the service (``poke`` from a cycle and on every
heartbeat, ``expire`` on every heartbeat, ``shutdown`` when it stops).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from reoptd.clock import Clock
from reoptd.cycle.loop import ModelLoop
from reoptd.errors import ReoptdError
from reoptd.store import RunRecord, Store

log = logging.getLogger("reoptd.dispatch")


class Dispatcher:
    """Claims queued runs up to the executors' capacity and executes each on a runner thread.

    ``owned``: the models this replica checks now (their runs are claimed here; a replica
    claims only its own models' runs, so a model's checks and runs stay on one replica)."""

    def __init__(
        self,
        loops: Iterable[ModelLoop],
        clock: Clock,
        owned: Callable[[], set[str]] | None = None,
    ) -> None:
        self.loops = {loop.name: loop for loop in loops}
        self.clock = clock
        self.owned = owned if owned is not None else (lambda: set(self.loops))
        executors = {id(loop.executor): loop.executor for loop in self.loops.values()}
        # claims, not capacity: the local executor lets a run gather its rows and another be
        # recorded while its slots execute others (its ``submit`` waits for a free slot)
        self.capacity = max(1, sum(e.claims for e in executors.values()))
        stores = {id(loop.store): loop.store for loop in self.loops.values()}
        self.stores: list[Store] = list(stores.values())
        self._lock = threading.Lock()
        self._running: dict[int, Future[RunRecord | None]] = {}
        self._closed = False
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="reoptd-run")

    @property
    def running(self) -> int:
        """Runs executing now in this process."""
        with self._lock:
            return len(self._running)

    def poke(self, _run: RunRecord | None = None) -> list[RunRecord]:
        """Claim queued runs while there is capacity; return the ones started."""
        started: list[RunRecord] = []
        with self._lock:
            if self._closed:
                return started
            owned = self.owned()
            for store in self.stores:
                models = [n for n, loop in self.loops.items() if loop.store is store and n in owned]
                while models and len(self._running) < self.capacity:
                    try:
                        run = store.claim_run(models=models)
                    except ReoptdError as exc:  # the database is away: the next poke retries
                        log.warning("cannot claim queued runs: %s", exc)
                        break
                    if run is None:
                        break
                    assert run.id is not None
                    future = self._pool.submit(self._execute, run)
                    self._running[run.id] = future
                    started.append(run)
        return started

    def expire(self) -> list[RunRecord]:
        """Re-queue (or fail) the runs whose executor stopped renewing their lease."""
        out = []
        for store in self.stores:
            try:
                out += store.expire_runs()
            except ReoptdError as exc:
                log.warning("cannot expire runs: %s", exc)
        for run in out:
            log.warning("run %s %s: %s", run.id, run.outcome, run.reason)
        return out

    def _execute(self, run: RunRecord) -> RunRecord | None:
        assert run.id is not None
        try:
            name = str(run.job.get("model", ""))
            loop = self.loops.get(name)
            if loop is None:  # cannot happen: only our models' runs are claimed
                log.error("run %d: no loop for model %r", run.id, name)
                return None
            return loop.execute(run, at=self.clock.now())
        except Exception:  # a runner thread must never die silently
            log.exception("run %d: its execution crashed", run.id)
            return None
        finally:
            with self._lock:
                self._running.pop(run.id, None)
            self.poke()  # a slot is free: the next queued run

    def close(self) -> None:
        """Claim nothing more (the queued runs wait for the next start or another replica)."""
        with self._lock:
            self._closed = True

    def shutdown(self, wait: bool = True) -> None:
        """Claim nothing more; wait for the runner threads (the executors were told to cancel
        their runs, which then finish as failed)."""
        self.close()
        self._pool.shutdown(wait=wait)
