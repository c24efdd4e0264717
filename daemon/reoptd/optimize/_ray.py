"""The ``ray`` executor: each run's steps as a task on an existing Ray cluster.

``REOPTD_EXECUTOR=ray`` with ``REOPTD_RAY_ADDRESS`` (``ray://host:10001`` through Ray Client, or
``auto``: the cluster this machine joined with ``ray start``); the optional extra
``reoptd[ray]``. The daemon stays the control plane: it gathers the run's rows, submits the run's
inputs by value (``Job``, the same one the process executor sends its child), and registers and
promotes what comes back (``Outcome``). The cluster's workers need reoptd and the policy's
libraries installed, and reach the daemon's database for Optuna studies.

The run is a Ray *generator* task that streams messages as the process executor's child sends
them over its pipe: log records, each step's start (its budget's deadline runs in the daemon),
then the outcome or the error. Ray Client (``ray://``) cannot stream a generator's results, so
there the run is one task returning its messages at the end, and the deadline is the sum of its
steps' budgets. A step over its budget, a cancelled run and a daemon shutdown all
end the task with ``ray.cancel(force=True)``, which kills its worker process: a step that never
returns cannot hold a worker.

A tune step with ``tune.jobs: N`` runs its trials in N parallel shares against the study in the
shared database (``parallel_trials``): the run's own task runs trials one at a time and N-1 trial
tasks (each asking for the run's CPUs) run chunks of the rest, all drawn from one quota. Only on
a database server: a SQLite file is neither shared by machines nor fit for parallel writers, so
there the trials stay in the run's task (Optuna's threads).

Ray is imported on first use; without it, the executor fails with what to install.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from reoptd.errors import OptimizeError, ReoptdError, first_line
from reoptd.optimize._base import RunContext
from reoptd.optimize._process import Job, Outcome, _Forward, _forward
from reoptd.optimize._runner import Execution, Executor
from reoptd.policy import format_duration

if TYPE_CHECKING:
    import optuna

    from reoptd.policy import Param, Policy

log = logging.getLogger("reoptd.optimize")

#: how often a waiting daemon looks for a cancellation or a step's deadline
POLL = 0.2
#: set in a Ray worker while it runs a run's steps: a tune step may fan out trial tasks
_IN_RAY_RUN = threading.Event()


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise OptimizeError(
            "REOPTD_EXECUTOR=ray needs Ray: pip install 'reoptd[ray]'"
            " (or choose REOPTD_EXECUTOR=local)"
        ) from None
    return ray


class _RayExecution(Execution):
    """A run's task: a generator streaming its messages (``handle`` an ``ObjectRefGenerator``),
    or, through Ray Client, which cannot stream, one task returning them all at the end."""

    def __init__(self, ctx: RunContext, handle: Any, streaming: bool, done: Any) -> None:
        self.ctx = ctx
        self._handle = handle
        self._streaming = streaming
        self._done = done
        self._cancelled: str | None = None
        self._finished = False

    def done(self) -> bool:
        if self._finished:
            return True
        if self._streaming:  # a stream's end is only seen by reading it (``result``)
            return False
        ready, _ = _ray().wait([self._handle], timeout=0)
        return bool(ready)

    def cancel(self, reason: str) -> None:
        self._cancelled = reason

    def result(self) -> dict[str, dict[str, Any]]:
        try:
            return self._supervise()
        finally:
            self._finished = True
            self._done(self)

    def _kill(self) -> None:
        ray = _ray()
        try:
            ray.cancel(self._handle, force=True)
        except Exception as exc:  # already finished, or the cluster is gone
            log.debug("%s: cancelling the run's Ray task: %s", self.ctx.policy.model, exc)

    def _next(self) -> list[tuple[str, Any]]:
        """The messages that are ready: one from the stream, or all of a finished task."""
        ray = _ray()
        try:
            if self._streaming:
                return [ray.get(next(self._handle))]
            return list(ray.get(self._handle))
        except StopIteration:
            raise OptimizeError("the run's Ray task ended without an outcome") from None
        except ray.exceptions.RayError as exc:
            raise OptimizeError(f"the run's Ray task failed: {first_line(exc)}") from None

    def _supervise(self) -> dict[str, dict[str, Any]]:
        ray = _ray()
        model = self.ctx.policy.model
        step, budget, deadline = "", 0.0, float("inf")
        if not self._streaming:  # no step starts come back: the steps' budgets for the run
            budget = sum(spec.limit.total_seconds() for spec in self.ctx.policy.pipeline)
            step, deadline = "the run", time.monotonic() + budget
        while True:
            if self._cancelled is not None:
                self._kill()
                raise OptimizeError(self._cancelled)
            now = time.monotonic()
            if now >= deadline:
                self._kill()
                raise OptimizeError(
                    f"{step} exceeded its budget of {format_duration(timedelta(seconds=budget))}:"
                    " stopped; the champion is kept"
                )
            ready, _ = ray.wait([self._handle], timeout=min(POLL, deadline - now))
            if not ready:
                continue
            for kind, payload in self._next():
                if kind == "log":
                    _forward(payload)
                elif kind == "step" and self._streaming:
                    step, budget = payload
                    deadline = time.monotonic() + budget
                    log.debug("%s: step %s started on Ray (budget %gs)", model, step, budget)
                elif kind == "error":
                    raise OptimizeError(payload)
                elif kind == "outcome":
                    assert isinstance(payload, Outcome)
                    payload.apply(self.ctx)
                    return payload.steps


class RayExecutor(Executor):
    """Runs on the Ray cluster at ``address``; each run takes ``cpus`` of its CPUs."""

    name = "ray"

    def __init__(self, address: str = "auto", *, cpus: float = 1.0) -> None:
        self.address = address
        self.cpus = cpus
        self._lock = threading.Lock()
        self._running: set[_RayExecution] = set()
        self._closed = False
        self._owned = False  # whether ``start`` connected (and ``shutdown`` disconnects)
        self._remote: Any = None
        self._streaming = True

    def start(self) -> None:
        ray = _ray()
        with self._lock:
            if self._remote is not None:
                return
            if not ray.is_initialized():
                try:
                    ray.init(
                        address=self.address,
                        logging_level=logging.WARNING,
                        log_to_driver=False,  # the run's records come back as messages
                        configure_logging=False,
                    )
                except Exception as exc:
                    raise OptimizeError(
                        f"REOPTD_RAY_ADDRESS={self.address}: cannot connect to the Ray cluster:"
                        f" {first_line(exc)}"
                    ) from None
                self._owned = True
            # Ray Client (ray://) cannot stream a generator task's results (ray-project/ray#43357)
            from ray.util.client import ray as client

            self._streaming = not client.is_connected()
            task = _run if self._streaming else _run_whole
            self._remote = ray.remote(task).options(num_cpus=self.cpus, max_retries=0)
        log.info(
            "Ray executor: cluster at %s, room for %d runs at a time", self.address, self.capacity
        )

    @property
    def capacity(self) -> int:
        """How many runs the cluster can run at once: its CPUs over the CPUs of one run."""
        ray = _ray()
        if not ray.is_initialized():
            self.start()
        return int(ray.cluster_resources().get("CPU", 0) // self.cpus)

    def submit(self, ctx: RunContext) -> Execution:
        if self._closed:
            raise OptimizeError("not started: the daemon is stopping")
        self.start()
        with self._lock:
            if self._closed:
                raise OptimizeError("not started: the daemon is stopping")
            handle = self._remote.remote(Job.of(ctx))
            execution = _RayExecution(ctx, handle, self._streaming, self._forget)
            self._running.add(execution)
        return execution

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            running = list(self._running)
        for execution in running:
            execution.cancel("stopped: the daemon is shutting down")

    def close(self) -> None:
        """Shut down, and disconnect from the cluster if ``start`` connected."""
        self.shutdown()
        if self._owned:
            _ray().shutdown()
            self._owned = False

    def _forget(self, execution: _RayExecution) -> None:
        with self._lock:
            self._running.discard(execution)


# -- on the cluster ---------------------------------------------------------------------------


def _run(job: Job) -> Iterator[tuple[str, Any]]:
    """The run's Ray task: the steps in a thread of this worker, their messages yielded."""
    messages: queue.Queue[tuple[str, Any]] = queue.Queue()
    handler = _Forward(lambda kind, payload: messages.put((kind, payload)))
    root = logging.getLogger()
    saved = root.level
    root.addHandler(handler)
    root.setLevel(job.log_level)
    _IN_RAY_RUN.set()
    thread = threading.Thread(target=_steps, args=(job, messages), name="reoptd-run")
    thread.start()
    try:
        while True:
            kind, payload = messages.get()
            yield kind, payload
            if kind in ("outcome", "error"):
                break
    finally:
        thread.join()
        _IN_RAY_RUN.clear()
        root.removeHandler(handler)
        root.setLevel(saved)


def _run_whole(job: Job) -> list[tuple[str, Any]]:
    """The run's task for Ray Client: every message of ``_run``, returned at the end."""
    return list(_run(job))


def _steps(job: Job, messages: queue.Queue[tuple[str, Any]]) -> None:
    from reoptd.optimize._pipeline import run_steps

    try:
        with _limit_threads(job.policy):
            ctx = job.context()
            steps = run_steps(ctx, on_step=lambda *started: messages.put(("step", started)))
            outcome = Outcome.of(ctx, steps)
    except ReoptdError as exc:
        messages.put(("error", str(exc)))
    except Exception as exc:
        logging.getLogger("reoptd.optimize").error(
            "%s: run failed on Ray:\n%s", job.policy.model, traceback.format_exc()
        )
        messages.put(("error", f"{type(exc).__name__}: {exc}"))
    else:
        messages.put(("outcome", outcome))


def _task_cpus() -> float:
    """The CPUs Ray gave this task (a run's trial tasks ask for as many)."""
    import ray

    return float(ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0))


def _threads() -> int:
    """This task's BLAS/OpenMP/torch thread budget: its CPUs (not the machine's), at least one."""
    return max(1, int(_task_cpus()))


def _limit_threads(policy: Policy) -> Any:
    """Cap the task's BLAS/OpenMP pools (threadpoolctl) and torch's to ``_threads``; the
    returned context manager restores the pools' limits on exit."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threads = _threads()
    limits = threadpool_limits(limits=threads)
    if policy.train.family == "torch":
        import torch

        torch.set_num_threads(threads)
    if log.isEnabledFor(logging.DEBUG):  # listing the pools costs 10-30 ms: a trial task's share
        pools = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
        log.debug(
            "%s: %g CPUs on Ray, thread pools capped at %d: %s",
            policy.model,
            _task_cpus(),
            threads,
            ", ".join(f"{k} {v}" for k, v in sorted(pools.items())) or "none loaded",
        )
    return limits


# -- a tune step's trials in parallel ----------------------------------------------------------


class _Quota:
    """The trials of a study left to start, handed out by the run's task: one at a time to its
    own share, in shrinking chunks to the trial tasks (guided self-scheduling), so a share that
    starts late or runs slow does less, and no share waits at the end for another's backlog."""

    def __init__(self, trials: int, jobs: int) -> None:
        self.left = trials
        self.jobs = jobs
        self._lock = threading.Lock()
        self.chunks = 0

    def take(self, n: int) -> int:
        with self._lock:
            n = min(n, self.left)
            self.left -= n
            return n

    def chunk(self) -> int:
        """A trial task's next chunk: a share of what is left (at least one trial)."""
        with self._lock:
            n = min(self.left, max(1, -(-self.left // (2 * self.jobs))))
            self.left -= n
            self.chunks += n > 0
            return n


def parallel_trials(
    study: optuna.Study,
    storage: Any,
    policy: Policy,
    space: dict[str, Param],
    objective: Any,
    trials: int,
    timeout: float | None,
    after: Callable[[optuna.Study], None],
) -> bool:
    """Run ``trials`` trials of ``study`` in ``tune.jobs`` parallel shares when this is a run's
    Ray task and the study lives on a database server; False (nothing done) otherwise.
    ``after(study)`` follows each trial of the run's own share.

    The run's task runs trials itself, one at a time from a ``_Quota``; a feeder thread keeps
    ``jobs - 1`` trial tasks busy with chunks of the rest. Each trial task asks for the run's
    CPUs and caps its BLAS/OpenMP threads to them."""
    spec = policy.tune
    jobs = min(spec.jobs, trials)
    if jobs < 2 or not _IN_RAY_RUN.is_set() or not _shared(storage):
        return False
    import ray

    from reoptd.optimize._studies import then

    cpus = _task_cpus()
    quota = _Quota(trials, jobs)
    deadline = None if timeout is None else time.monotonic() + timeout
    objective_ref = ray.put(objective)
    task = ray.remote(_trials).options(num_cpus=cpus, max_retries=0)
    failed: list[BaseException] = []
    stop = threading.Event()

    def feed() -> None:
        """Keep ``jobs - 1`` chunks in flight until the quota is spent."""
        inflight: list[Any] = []
        try:
            while True:
                while len(inflight) < jobs - 1 and not stop.is_set():
                    left = None if deadline is None else deadline - time.monotonic()
                    n = quota.chunk() if left is None or left > 0 else 0
                    if n == 0:
                        break
                    seed = None if spec.seed is None else spec.seed + quota.chunks
                    inflight.append(
                        task.remote(
                            storage, study.study_name, policy, space, seed, objective_ref, n, left
                        )
                    )
                if not inflight:
                    return
                if stop.is_set():  # the run's own share failed: its trial tasks are moot
                    for ref in inflight:
                        ray.cancel(ref, force=True)
                    return
                ready, inflight = ray.wait(inflight, num_returns=1, timeout=POLL)
                ray.get(ready)
        except BaseException as exc:
            failed.append(exc)
            stop.set()
            for ref in inflight:
                ray.cancel(ref, force=True)

    def more(study: optuna.Study) -> None:
        after(study)
        if stop.is_set() or not quota.take(1):
            study.stop()

    log.info("%s: tune: %d trials in %d parallel shares on Ray", policy.model, trials, jobs)
    feeder = threading.Thread(target=feed, name="reoptd-trial-feeder")
    feeder.start()
    try:
        if quota.take(1):  # the run's own share: the study as created, with the policy's seed
            study.optimize(
                then(objective, more), n_trials=None, timeout=timeout, catch=(ValueError,)
            )
    except BaseException:
        stop.set()
        raise
    finally:
        feeder.join()
    if failed:
        exc = failed[0]
        if isinstance(exc, ray.exceptions.RayTaskError):
            raise OptimizeError(f"tune: a trial task failed: {first_line(exc)}") from None
        raise exc
    return True


def _shared(storage: Any) -> bool:
    return isinstance(storage, str) and not storage.startswith("sqlite")


#: the study storages of this worker process by URL: a trial task reuses the connections (and
#: the cache of finished trials) of the tasks before it instead of opening its own
_STORAGES: dict[str, Any] = {}
_STORAGES_LOCK = threading.Lock()


def _storage(url: str) -> Any:
    from reoptd.optimize._studies import open_storage

    with _STORAGES_LOCK:
        if url not in _STORAGES:
            _STORAGES[url] = open_storage(url)
        return _STORAGES[url]


def _trials(
    storage: str,
    name: str,
    policy: Policy,
    space: dict[str, Param],
    seed: int | None,
    objective: Any,
    n: int,
    timeout: float | None,
) -> int:
    """A chunk of a study's trials, in a Ray task: the study with the policy's sampler (seeded
    per chunk: the same seed twice would suggest the same parameters twice) and pruner; how
    many trials it ran."""
    import optuna

    from reoptd.optimize._tune import _pruner, _sampler

    study = optuna.load_study(
        study_name=name,
        storage=_storage(storage),
        sampler=_sampler(policy.tune.sampler, space, seed),
        pruner=_pruner(policy.tune.pruner),
    )
    with _limit_threads(policy):
        study.optimize(objective, n_trials=n, timeout=timeout, catch=(ValueError,))
    return n
