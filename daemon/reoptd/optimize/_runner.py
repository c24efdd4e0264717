"""Where a run's steps execute: the ``Executor`` contract, and the in-process one.

``run_pipeline`` gathers a run's rows in the caller's process, then hands the ``RunContext`` to
an executor: ``submit(ctx)`` starts the steps, ``Execution.result()`` waits for their records
(and leaves the challenger, metrics and verdict on ``ctx``), ``cancel`` stops them. The caller
alone registers and promotes what comes back.

- ``InlineExecutor`` runs the steps in the calling thread: fast (the tests use it), but a step
  over its budget is only noticed when it returns, and nothing can stop it.
- ``LocalProcessExecutor`` (``_process.py``, the daemon's default) runs them in a child process
  that is terminated when a step exceeds its budget or the daemon stops.
- ``RayExecutor`` (``_ray.py``) runs them as a task on a Ray cluster, killed the same way.

``REOPTD_EXECUTOR`` (``inline``, ``process`` or ``ray``) picks one: ``open_executor``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from reoptd.errors import OptimizeError
from reoptd.optimize._base import RunContext


class Execution(ABC):
    """One submitted run."""

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


def open_executor(kind: str) -> Executor:
    """The executor a setting names: ``inline``, ``process`` or ``ray`` (at
    ``REOPTD_RAY_ADDRESS``; connected on its first run)."""
    if kind == "inline":
        return InlineExecutor()
    if kind == "process":
        from reoptd.optimize._process import LocalProcessExecutor

        return LocalProcessExecutor()
    if kind == "ray":
        from reoptd.optimize._ray import RayExecutor
        from reoptd.settings import Settings

        return RayExecutor(Settings().ray_address)
    raise OptimizeError(f"REOPTD_EXECUTOR: unknown executor {kind!r} (inline, process or ray)")
