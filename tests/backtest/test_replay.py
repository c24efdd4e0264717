"""History through the daemon: ``reoptd check --at TIME`` and ``reoptd run --replay FILE``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from reoptd.cli import app
from reoptd.data import demo
from reoptd.settings import DEMO_POLICY


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven hours of the demo stream as a file, and the demo policy reading it."""
    root = tmp_path_factory.mktemp("replay")
    frame = demo.DemoSource(label_delay=timedelta(0)).read(
        demo.START - timedelta(hours=3), demo.START + timedelta(hours=4)
    )
    (root / "data").mkdir()
    frame.to_parquet(root / "data" / "history.parquet", index=False)
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["data"] = {"production": {"kind": "files", "path": str(root / "data" / "*.parquet")}}
    (root / "policies").mkdir()
    (root / "policies" / "churn.yaml").write_text(yaml.safe_dump(policy))
    return root


def _reoptd(files: Path, home: Path, *args: str):
    env = {"REOPTD_HOME": str(home), "REOPTD_POLICIES": str(files / "policies")}
    return CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)


def test_check_at_a_past_instant_bootstraps_and_checks_and_says_where_the_data_is(
    files: Path, tmp_path: Path
) -> None:
    from reoptd.store import open_store

    now = _reoptd(files, tmp_path, "check", "demo_churn")  # today: the data is in the past
    assert "now was" in now.stderr and "the data covers 2026-01-01 21:00 to" in now.stderr
    assert "use --at TIME" in now.stderr

    at = _reoptd(files, tmp_path, "check", "demo_churn", "--at", "2026-01-02T00:00")
    assert at.exit_code == 0, at.output
    assert "now was" not in at.stderr
    store = open_store(f"sqlite:///{tmp_path / 'reoptd.db'}", tmp_path / "artifacts")
    try:
        assert store.model("demo_churn").champion_version == 1
        (check,) = store.checks("demo_churn", limit=10)  # one call: bootstrap AND check
        assert check.status == "ok" and check.champion_version == 1
        assert check.at.isoformat().startswith("2026-01-02T00:00")
    finally:
        store.close()


@pytest.mark.slow
def test_run_replay_cycles_the_daemon_over_the_file_on_its_time(
    files: Path, tmp_path: Path
) -> None:
    from reoptd.store import open_store

    done = _reoptd(files, tmp_path, "run", "--replay", str(files / "data" / "history.parquet"))
    assert done.exit_code == 0, done.output
    # the demo policy: a 2h window, a cycle every 30m, 23:00 to 04:00 (sees the last row)
    assert "demo_churn: 11 cycles from 2026-01-01 23:00 to 2026-01-02 04:00 UTC" in done.stdout
    store = open_store(f"sqlite:///{tmp_path / 'reoptd.db'}", tmp_path / "artifacts")
    try:
        checks = store.checks("demo_churn", limit=100)
        assert len(checks) == 11 and all(c.status == "ok" for c in checks)
        assert checks[0].at.isoformat().startswith("2026-01-01T23:00")
        assert store.runs("demo_churn")[0].trigger == "bootstrap"
    finally:
        store.close()
