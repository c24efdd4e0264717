"""Where a run's steps execute: the ``Executor`` contract, and the in-process one.

The contract, all an executor implements (helper executors such as Ray's follow it):

- ``capacity``: how many runs it executes at once; ``claims``: how many the control plane
  (``reoptd.cycle.Dispatcher``) may hold at once, never more (default ``capacity``; more when
  ``submit`` waits for a free slot, so that a run's work in the daemon, reading its rows before
  and registering its challenger after, overlaps another run's execution);
- ``submit(ctx)``: start the policy's steps on a ``RunContext`` whose rows are gathered; returns
  an ``Execution`` at once (a remote executor ships ``Job.of(ctx)``, picklable, and brings back
  an ``Outcome``, picklable too: ``_process.py``);
- ``Execution.done()`` (poll, never blocks), ``Execution.result()`` (wait: the steps' records,
  the challenger, metrics and verdict left on ``ctx``; ``OptimizeError`` naming why it failed),
  ``Execution.cancel(reason)``;
- ``start`` / ``shutdown``: warm up before the first run; refuse new runs and cancel the
  running ones.

An executor never touches the store: the caller (the control plane) records the result,
registers the challenger and alone promotes.

- ``InlineExecutor`` runs the steps in the calling thread: fast (the tests use it), but a step
  over its budget is only noticed when it returns, and nothing can stop it.
- ``LocalProcessExecutor`` (``_process.py``, ``local``, the daemon's default) runs each in a child
  process, ``slots`` at once, terminated when a step exceeds its budget or the daemon stops.
- ``RayExecutor`` (``_ray.py``, ``ray``) runs each as a task on a Ray cluster, killed the same way;
  its capacity is the cluster's CPUs over one run's.

``REOPTD_EXECUTOR`` / ``--executor`` (``local``, ``inline``, ``ray``; ``process`` is the old name
of ``local``) picks one: ``open_executor``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from reoptd.errors import OptimizeError
from reoptd.optimize._base import RunContext


class Execution(ABC):
    """One submitted run."""

    @abstractmethod
    def done(self) -> bool:
        """Whether ``result`` would return (or raise) without waiting."""

    @abstractmethod
    def result(self) -> dict[str, dict[str, Any]]:
        """Wait for the steps; their records by step name. Raises ``OptimizeError`` with the
        reason when a step failed, overran its budget or the run was cancelled."""

    @abstractmethod
    def cancel(self, reason: str) -> None:
        """Stop the run; ``result`` raises ``OptimizeError(reason)``."""


class Executor(ABC):
    """Runs the steps of re-optimization runs. Who calls it: ``run_pipeline`` (submit), the
    service (``start`` before the first cycle, ``shutdown`` when it stops)."""

    name: str = ""

    @property
    def capacity(self) -> int:
        """Runs executed at once (the local executor's slots, a cluster's free workers)."""
        return 1

    @property
    def claims(self) -> int:
        """Runs the control plane may hold at once (claimed, gathering their rows, executing or
        being recorded): ``capacity`` unless ``submit`` waits for a free slot."""
        return self.capacity

    def start(self) -> None:  # noqa: B027 - optional: an executor with nothing to warm up
        """Warm up before the first run (e.g. start the process that forks the runs)."""

    @abstractmethod
    def submit(self, ctx: RunContext) -> Execution:
        """Start the policy's steps on ``ctx`` (its rows already gathered)."""

    @abstractmethod
    def shutdown(self) -> None:
        """Refuse new runs and cancel the running ones, without waiting on their work."""


class _InlineExecution(Execution):
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.cancelled: str | None = None

    def done(self) -> bool:
        return False  # the steps run when ``result`` is called, in the calling thread

    def result(self) -> dict[str, dict[str, Any]]:
        from reoptd.optimize._pipeline import run_steps

        if self.cancelled is not None:
            raise OptimizeError(self.cancelled)
        return run_steps(self.ctx)

    def cancel(self, reason: str) -> None:
        self.cancelled = reason  # only before it starts: a running step cannot be stopped


class InlineExecutor(Executor):
    """The steps run in the calling thread when ``result`` is called; budgets are checked when
    each step returns (a step that never returns holds the thread)."""

    name = "inline"

    def submit(self, ctx: RunContext) -> Execution:
        return _InlineExecution(ctx)

    def shutdown(self) -> None:
        """Nothing to stop: a run in progress finishes in its thread."""


#: the executors ``open_executor`` knows; ``process`` is the former name of ``local``
EXECUTORS = ("local", "inline", "ray", "process")


def open_executor(kind: str, slots: int | None = None) -> Executor:
    """The executor a setting names: ``local`` (``slots`` worker processes; default one per
    core), ``inline`` or ``ray`` (at ``REOPTD_RAY_ADDRESS``, ``REOPTD_RAY_CPUS`` per run;
    connected on first use);
    ``process`` is accepted for ``local``."""
    if kind == "inline":
        return InlineExecutor()
    if kind in ("local", "process"):
        from reoptd.optimize._process import LocalProcessExecutor

        return LocalProcessExecutor(slots)
    if kind == "ray":
        from reoptd.optimize._ray import RayExecutor
        from reoptd.settings import Settings

        settings = Settings()
        return RayExecutor(settings.ray_address, cpus=settings.ray_cpus)
    raise OptimizeError(f"REOPTD_EXECUTOR: unknown executor {kind!r} ({', '.join(EXECUTORS)})")
