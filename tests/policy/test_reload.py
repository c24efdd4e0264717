"""Hot reload: an edited policy takes effect at the next check; a broken edit is rejected."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from reoptd.clock import AcceleratedClock, SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import load_policy
from reoptd.service import Service
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store


def _edit(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))
    # mtime resolution can hide two writes in one tick; the size usually changes, but be sure
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_valid_edit_applies_and_invalid_edit_keeps_the_last_policy(
    tmp_path: Path, sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_POLICY.read_text())
    loop = ModelLoop(load_policy(path), sqlite_registry, metrics)
    loop.start()
    loop.cycle(clock.now())
    valid = lambda: metrics.registry.get_sample_value(  # noqa: E731
        "reoptd_policy_valid", {"model": "demo_churn"}
    )
    assert loop.reload_if_changed() is False and valid() == 1

    _edit(path, "cooldown: 1h", "cooldown: 3h")
    assert loop.reload_if_changed() is True
    assert loop.policy.guards.cooldown == timedelta(hours=3) and valid() == 1

    _edit(path, "cooldown: 3h", "coldown: 2h")
    assert loop.reload_if_changed() is False
    assert loop.policy.guards.cooldown == timedelta(hours=3)  # the last valid one runs on
    assert valid() == 0
    clock.advance(timedelta(minutes=30))
    assert loop.cycle(clock.now()).check.status == "ok"  # and the daemon keeps checking

    _edit(path, "coldown: 2h", "cooldown: 2h")
    assert loop.reload_if_changed() is True
    assert loop.policy.guards.cooldown == timedelta(hours=2) and valid() == 1

    _edit(path, "model: demo_churn", "model: renamed")
    assert loop.reload_if_changed() is False and valid() == 0 and loop.name == "demo_churn"


def test_the_service_picks_up_an_edit_at_the_next_check(
    tmp_path: Path, sqlite_registry: Store
) -> None:
    path = tmp_path / "demo.yaml"
    path.write_text(DEMO_POLICY.read_text())
    clock = AcceleratedClock(demo.START, speed=1800)  # a 30 min check each second
    metrics = Metrics()
    loop = ModelLoop(load_policy(path), sqlite_registry, metrics)
    service = Service([loop], clock, metrics, metrics_port=0)
    service.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            sqlite_registry.models() and sqlite_registry.checks("demo_churn")
        ):
            time.sleep(0.2)
        _edit(path, "min_rows: 100", "min_rows: 100000")  # every window is now too small
        deadline = time.monotonic() + 30
        skipped = []
        while time.monotonic() < deadline and not skipped:
            time.sleep(0.3)
            skipped = [c for c in sqlite_registry.checks("demo_churn") if c.status == "skipped"]
    finally:
        service.stop()
    assert skipped and "monitor.min_rows=100000" in skipped[0].reason
    assert loop.policy.monitor.min_rows == 100000
