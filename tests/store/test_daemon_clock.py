"""CLI champion changes stamp the daemon's time when the daemon runs a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from reoptd import app as assemble
from reoptd.clock import AcceleratedClock, SystemClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.service import Service
from reoptd.store import Store


def test_the_daemon_records_its_clock_and_the_cli_stamps_champion_changes_with_it(
    sqlite_registry: Store, demo_policy: Policy, tmp_path: Path
) -> None:
    from reoptd.cli import app

    name = demo_policy.model
    clock = AcceleratedClock(demo.START, 300.0)
    service = Service([ModelLoop(demo_policy, sqlite_registry, Metrics())], clock, Metrics())
    sqlite_registry.ensure_model(demo_policy, clock.now())
    for payload in (b"one", b"two"):
        sqlite_registry.add_version(
            name, model_bytes=payload, reference_bytes=b"ref", at=clock.now()
        )
    sqlite_registry.promote(name, 1, at=clock.now())
    service._heartbeat()  # what the daemon does every few seconds
    daemon_now = sqlite_registry.daemon_clock()
    assert daemon_now is not None
    assert abs(daemon_now - clock.now()) < timedelta(hours=1)  # 300x: seconds are minutes
    assert abs(SystemClock().now() - daemon_now) > timedelta(days=30)  # demo time is not now

    shown = CliRunner().invoke(
        app, ["models", "promote", name, "2"], env={"REOPTD_HOME": str(tmp_path)}
    )
    assert shown.exit_code == 0, shown.output
    promoted = sqlite_registry.model(name)
    assert promoted.champion_version == 2 and promoted.champion_since is not None
    assert abs(promoted.champion_since - clock.now()) < timedelta(hours=1)
    later = clock.now() + timedelta(minutes=30)
    state = sqlite_registry.state(name, later)
    assert state.champion_since is not None and state.champion_since <= later  # age >= 0

    # a daemon on the system clock: the CLI uses the system clock
    Service(
        [ModelLoop(demo_policy, sqlite_registry, Metrics())], SystemClock(), Metrics()
    )._heartbeat()
    assert sqlite_registry.daemon_clock() is None
    assert abs(assemble.action_time(sqlite_registry) - datetime.now(UTC)) < timedelta(minutes=1)
