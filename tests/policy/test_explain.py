"""`reoptd policy explain`: what a policy will do, and what it would have decided."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import explain, load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore

REOPTD = str(Path(sys.executable).parent / "reoptd")
POLICIES = sorted((Path(__file__).resolve().parents[2] / "policies").glob("*.yaml"))


def test_the_demo_is_explained_in_plain_words() -> None:
    text = "\n".join(explain(load_policy(DEMO_POLICY)))
    assert "Every 30m it checks the rows of the last 2h" in text
    assert "more than 30% of features drift in 2 consecutive checks" in text
    assert "f1 falls below 0.45" in text and "older than 1w" in text
    assert "waits at least 1h between runs" in text
    assert "holds out the newest 25%" in text and "becomes the champion at once" in text


@pytest.mark.parametrize("path", POLICIES, ids=[p.name for p in POLICIES])
def test_every_example_policy_explains(path: Path) -> None:
    lines = explain(load_policy(path))
    assert len(lines) >= 6 and all(line.strip() for line in lines)
    assert "None" not in "\n".join(lines)


def test_shadow_and_all_are_explained() -> None:
    text = "\n".join(explain(load_policy(POLICIES[0].parent / "fraud-shadow.yaml")))
    assert "when all of these hold" in text and "at least 50000 rows arrived" in text
    assert "in shadow" in text and "5 checks" in text and "rolled back" in text


def test_explain_history_replays_recorded_checks_through_an_edited_policy(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    registry = SqlStore(f"sqlite:///{home / 'reoptd.db'}", home / "artifacts")
    clock = SimulatedClock(demo.START)
    loop = ModelLoop(load_policy(DEMO_POLICY), registry, Metrics())
    for _ in range(10):  # through the drift point at +3h
        loop.cycle(clock.now())
        clock.advance(timedelta(minutes=30))
    registry.close()
    stricter = tmp_path / "strict.yaml"
    stricter.write_text(
        DEMO_POLICY.read_text().replace("{above: 0.3, for: 2}", "{above: 0.3, for: 1}")
    )
    env = {**os.environ, "REOPTD_HOME": str(home)}
    done = subprocess.run(
        [REOPTD, "policy", "explain", str(stricter), "--history", "demo_churn", "--last", "6"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    verdicts = [line for line in lines if not line.startswith("    ")]
    assert len(verdicts) == 6
    assert any("RE-OPTIMIZE (drift_share)" in v for v in verdicts)
    assert "drift_share 0.40 > 0.30 for 1/1 checks" in done.stdout
    unknown = subprocess.run(
        [REOPTD, "policy", "explain", str(stricter), "--history", "nope"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert unknown.returncode == 1 and "no model named 'nope'" in unknown.stderr


def test_object_storage_and_stream_sources_are_explained() -> None:
    folder = POLICIES[0].parent
    s3 = "\n".join(explain(load_policy(folder / "churn-s3.yaml")))
    assert (
        "files matching `s3://ml-logs/churn/predictions/date=*/*.parquet` on object storage" in s3
    )
    assert "credentials and endpoint from the environment" in s3
    assert "only the day partitions of its window" in s3
    stream = "\n".join(explain(load_policy(folder / "churn-stream.yaml")))
    assert "JSON messages on subject `churn.predictions` of stream `CHURN`" in stream
    assert "the broker in $CHURN_NATS_URL" in stream
    assert "REOPTD_HOME/streams/churn_stream/predictions and acked once on disk" in stream
    assert "Labels come from JSON messages on subject `churn.labels`" in stream
