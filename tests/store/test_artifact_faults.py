"""Artifacts after hard faults: orphaned files are collected, a corrupt champion shows in
``reoptd status``, ``reoptd models show`` and ``reoptd_champion_loadable``."""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.store import Store


def test_orphaned_artifacts_are_collected_after_the_grace_period_and_referenced_ones_kept(
    sqlite_registry: Store, demo_policy: Policy, clock: SimulatedClock
) -> None:
    name = demo_policy.model
    sqlite_registry.ensure_model(demo_policy, clock.now())
    version = sqlite_registry.add_version(
        name, model_bytes=b"model", reference_bytes=b"reference", at=clock.now()
    )
    artifacts = sqlite_registry.artifacts
    orphan = artifacts.put(b"a run cut off before inserting its version")
    fresh = artifacts.put(b"a run still in flight")
    root = Path(artifacts.uri(orphan)).parent.parent
    (root / orphan[:2] / ".tmp-killed").write_bytes(b"half a write")
    old = time.time() - 7200
    for path in [Path(artifacts.uri(orphan)), root / orphan[:2] / ".tmp-killed"]:
        os.utime(path, (old, old))
    os.utime(Path(artifacts.uri(version.sha256)), (old, old))  # old but referenced
    removed = sqlite_registry.collect_artifacts()
    assert sorted(Path(k).name for k in removed) == sorted([orphan, ".tmp-killed"])
    assert not artifacts.exists(orphan) and artifacts.exists(fresh)
    sqlite_registry._verify(version)  # both of the version's artifacts are still there
    assert sqlite_registry.collect_artifacts(grace=timedelta(0)) == [
        str(Path(artifacts.uri(fresh)).relative_to(root))
    ]


def test_a_corrupt_champion_shows_in_status_models_show_and_a_metric(
    demo_policy: Policy, sqlite_registry: Store, clock: SimulatedClock, tmp_path: Path
) -> None:
    from reoptd.cli import app

    metrics = Metrics()
    name = demo_policy.model
    loop = ModelLoop(demo_policy, sqlite_registry, metrics)
    loop.cycle(clock.now())
    loop.cycle(clock.advance(timedelta(minutes=30)))
    loadable = {"model": name}
    assert metrics.registry.get_sample_value("reoptd_champion_loadable", loadable) == 1
    assert sqlite_registry.champion_problem(name) is None
    champion = sqlite_registry.champion(name)
    assert champion is not None
    sqlite_registry.artifacts.path(champion.sha256).write_bytes(b"bit rot")  # type: ignore[attr-defined]
    fresh = ModelLoop(demo_policy, sqlite_registry, metrics)  # as after a restart
    fresh.cycle(clock.advance(timedelta(minutes=30)))
    assert metrics.registry.get_sample_value("reoptd_champion_loadable", loadable) == 0
    assert metrics.registry.get_sample_value("reoptd_data_errors_total", loadable) == 1
    problem = sqlite_registry.champion_problem(name)
    assert problem is not None and f"v{champion.version}" in problem and "corrupt" in problem

    env = {"REOPTD_HOME": str(tmp_path)}
    shown = CliRunner().invoke(app, ["status", "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["models"][0]["champion_problem"] == problem
    text = CliRunner().invoke(app, ["status"], env=env).stdout
    assert "CHAMPION UNUSABLE" in text and "corrupt" in text
    show = CliRunner().invoke(app, ["models", "show", name], env=env)
    assert show.exit_code == 0, show.output
    assert "CHAMPION UNUSABLE" in show.stdout
