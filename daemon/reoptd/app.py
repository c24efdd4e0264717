"""Assembling the daemon's parts from settings: store, policies, clock, loops.

The CLI calls these; tests build the same parts directly with their own arguments.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from reoptd.clock import AcceleratedClock, Clock, SimulatedClock, SystemClock
from reoptd.data import demo
from reoptd.errors import ModelNotFound, PolicyError, ReoptdError
from reoptd.policy import Policy, load_policies, load_policy
from reoptd.settings import DEMO_POLICY, Settings
from reoptd.store import Store, open_store

if TYPE_CHECKING:
    from reoptd.metrics import Metrics

log = logging.getLogger("reoptd")

#: how much faster than real time the demo's simulated clock runs by default
DEMO_SPEED = 300.0


def open_registry(
    settings: Settings, metrics: Metrics | None = None, *, daemon: bool = False
) -> Store:
    """The store, with the webhooks and the MLflow sync of the settings listening to its
    champion changes; ``daemon`` also starts the MLflow sync's periodic passes."""
    registry = open_store(settings.database_url, settings.artifacts)
    if settings.mlflow_uri:
        from reoptd.mlflow_sync import MlflowSync

        sync = MlflowSync(
            registry,
            settings.mlflow_uri,
            interval=settings.mlflow_sync_every,
            timeout=settings.mlflow_timeout,
            on_error=(lambda m: metrics.mlflow_sync_errors.labels(m).inc()) if metrics else None,
        )
        registry.listeners.append(sync)
        if daemon:
            sync.start()
    if settings.webhooks:
        from reoptd.webhooks import WebhookNotifier

        if settings.webhook_secret is None:
            raise ReoptdError(
                "REOPTD_WEBHOOK_URLS is set but REOPTD_WEBHOOK_SECRET is not: webhooks are"
                " always signed; set a secret"
            )
        try:
            notifier = WebhookNotifier(
                settings.webhooks,
                settings.webhook_secret.get_secret_value(),
                attempts=settings.webhook_attempts,
                backoff=settings.webhook_backoff,
                on_failure=(lambda m: metrics.webhook_failures.labels(m).inc())
                if metrics
                else None,
            )
        except ValueError as exc:
            raise ReoptdError(f"REOPTD_WEBHOOK_URLS: {exc}") from None
        registry.listeners.append(notifier)
    return registry


def close_registry(registry: Store, timeout: float = 30.0) -> None:
    """Undo ``open_registry``: stop the listeners' background passes (the MLflow sync's thread,
    waiting up to ``timeout`` seconds for a pass in flight), then close the store."""
    for listener in registry.listeners:
        if isinstance(listener, _Stoppable):
            listener.stop(timeout)
    registry.close()


@runtime_checkable
class _Stoppable(Protocol):
    def stop(self, timeout: float | None = None) -> None: ...


def read_policies(directory: Path | None) -> tuple[list[Policy], list[PolicyError]]:
    """The policies of ``directory``, or the embedded demo policy when it is None."""
    if directory is None:
        return [load_policy(DEMO_POLICY)], []
    if not directory.is_dir():
        raise PolicyError(str(directory), [f"{directory}: not a directory of policy files"])
    return load_policies(directory)


def report_policy_errors(errors: list[PolicyError], metrics: Metrics | None = None) -> None:
    """Log each skipped policy file and why; a file whose model can be read sets that model's
    ``reoptd_policy_valid`` to 0, every one counts in ``reoptd_policy_file_errors_total``."""
    for error in errors:
        log.error("skipping policy %s:\n  %s", error.path, "\n  ".join(error.problems))
        if metrics is not None:
            metrics.policy_file_errors.inc()
            if error.model is not None:
                metrics.policy_valid.labels(error.model).set(0)


def find_policy(directory: Path | None, model: str) -> Policy:
    policies, _errors = read_policies(directory)
    for policy in policies:
        if policy.model == model:
            return policy
    known = ", ".join(p.model for p in policies) or "none"
    raise ModelNotFound(model, f"policies found: {known}")


def is_demo(policies: list[Policy]) -> bool:
    return bool(policies) and all(p.data.production.kind == "demo" for p in policies)


def resume_point(policies: list[Policy], registry: Store) -> datetime:
    """Where a simulated demo clock starts: the demo start, or after the last recorded check."""
    start = demo.START
    for policy in policies:
        try:
            checks = registry.checks(policy.model, limit=1)
        except ModelNotFound:
            continue
        if checks:
            start = max(start, checks[-1].at + policy.monitor.every)
    return start


def make_clock(
    mode: str, policies: list[Policy], registry: Store, speed: float | None = None
) -> Clock:
    """``system``, ``simulated`` (accelerated by ``speed``), or ``auto``: simulated for demo
    policies, system otherwise. A simulated clock starts after the last recorded check, or at
    the daemon's time if a daemon on a simulated clock is further on."""
    if mode == "auto":
        mode = "simulated" if is_demo(policies) else "system"
    if mode == "system":
        return SystemClock()
    start = resume_point(policies, registry)
    daemon = registry.daemon_clock()
    if daemon is not None:
        start = max(start, daemon)
    if speed is None:
        return SimulatedClock(start)
    return AcceleratedClock(start, speed)


def action_time(registry: Store) -> datetime:
    """When a champion change made from the CLI happens: the daemon's time when a daemon runs
    (or last ran) on a simulated clock, so the champion's age never goes negative and the
    daemon's next decisions see it; the system clock otherwise."""
    return registry.daemon_clock() or SystemClock().now()
