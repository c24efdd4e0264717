"""A real API server for tests: uvicorn on a free loopback port, in a thread, over a SQLite
registry seeded with the demo model (v1 champion, v2 a validated challenger waiting for approval).

Training the two versions takes seconds, so it happens once per session into a template
directory; each test gets its own copy of the database and the artifact store.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from reoptd.api import ApiServer, create_app
from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import DemoSource, demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store
from reoptd.store.sql import SqlStore

TOKEN = "s3cret-token-for-tests"
MODEL = "demo_churn"


def api_policy(*, mode: str = "manual", kind: str = "api") -> Policy:
    """The demo policy reading rows posted to the API (``kind``) with promote.mode ``mode``."""
    text = DEMO_POLICY.read_text()
    text = text.replace("production: {kind: demo, seed: 7}", f"production: {{kind: {kind}}}")
    text = text.replace("  min_improvement: 0.005\n", f"  min_improvement: 0.005\n  mode: {mode}\n")
    return parse_policy(text, "api.yaml")


def seed(directory: Path) -> None:
    """v1 trained before the demo's drift (champion); v2 after it (pending approval)."""
    directory.mkdir(parents=True, exist_ok=True)
    registry = SqlStore(f"sqlite:///{directory / 'reoptd.db'}", directory / "artifacts")
    clock = SimulatedClock(demo.START)
    loop = ModelLoop(api_policy(), registry, Metrics(), source=DemoSource())
    loop.optimize(clock.now(), trigger="bootstrap")  # v1, and no check (a cycle would check)
    clock.set(demo.DRIFT_AT + timedelta(hours=2))
    run = loop.optimize(clock.now(), trigger="manual")
    assert run.outcome == "pending", run.reason
    registry.close()


@dataclass
class Served:
    url: str
    registry: Store
    clock: SimulatedClock
    policy: Policy
    server: ApiServer
    home: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@contextmanager
def serve(
    template: Path,
    home: Path,
    *,
    token: str | None = TOKEN,
    policies: list[Policy] | None = None,
    **options: object,
) -> Iterator[Served]:
    shutil.copytree(template, home)
    registry = SqlStore(f"sqlite:///{home / 'reoptd.db'}", home / "artifacts")
    clock = SimulatedClock(demo.DRIFT_AT + timedelta(hours=2))
    policy = api_policy()
    app = create_app(registry, policies or [policy], clock, token=token, **options)  # type: ignore[arg-type]
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    try:
        yield Served(server.url, registry, clock, policy, server, home)
    finally:
        server.stop()
        registry.close()
