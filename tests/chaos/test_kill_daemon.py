"""The standing chaos suite: ``reoptd run`` (demo policy, accelerated clock, its own
REOPTD_HOME) killed with SIGKILL at random instants, from its first start's migration to its
re-optimizations, 20 times; after each kill the database and the artifact store are consistent,
and after a clean restart no run is left ``running`` (a cut-off run is re-queued or closed with
the reason) and the champion loads."""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reoptd.cycle import ModelLoop
from reoptd.metrics import Metrics
from reoptd.policy import load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import INTERRUPTED, Store, open_store

KILLS = 20
MODEL = "demo_churn"


def _daemon(home: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "REOPTD_HOME": str(home), "OMP_NUM_THREADS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reoptd.cli",
                "run",
                "--no-api",
                "--metrics-port",
                "0",
                "--speed",
                "3000",
                *extra,
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for(log: Path, text: str, start: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace")[start:]:
            return True
        time.sleep(0.05)
    return False


def _consistent(store: Store) -> None:
    """Every version's artifacts exist and verify; the champion is one of them; each champion
    event follows the one before."""
    for model in store.models():
        versions = store.versions(model.name)
        for version in versions:
            store._verify(version)
        if model.champion_version is not None:
            assert model.champion_version in {v.version for v in versions}
        events = store.events(model.name)
        for before, after in itertools.pairwise(events):
            assert after.from_version == before.to_version


@pytest.mark.slow
def test_kill_9_at_random_instants_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("REOPTD_CHAOS_SEED", "14")))
    home = tmp_path / "home"
    log = tmp_path / "daemon.log"
    log.touch()
    url = f"sqlite:///{home / 'reoptd.db'}"
    cut_runs: set[int | None] = set()  # runs a kill left running
    for i in range(KILLS):
        start = log.stat().st_size
        child = _daemon(home, log)
        if i < 3:  # the first starts: the kill lands in the imports or the migration
            time.sleep(rng.uniform(0.5, 3.0))
        elif i % 2:  # inside a re-optimization: just after one of its steps finished
            assert _wait_for(log, "reoptd starting", start, 60), log.read_text()[-3000:]
            _wait_for(log, " done in ", start, 20)
            time.sleep(rng.uniform(0.0, 0.3))
        else:  # anywhere: in a check, a backfill or a re-optimization
            assert _wait_for(log, "reoptd starting", start, 60), log.read_text()[-3000:]
            time.sleep(rng.uniform(0.0, 3.0))
        child.kill()
        child.wait()
        store = open_store(url, home / "artifacts")  # the next start
        try:
            _consistent(store)
            for model in store.models():
                cut_runs |= {r.id for r in store.runs(model.name) if r.outcome == "running"}
        finally:
            store.close()

    # a clean restart closes what the kills left running, and the champion loads
    start = log.stat().st_size
    final = _daemon(home, log, "--exit-after", "4")
    assert final.wait(timeout=120) == 0, log.read_text()[-3000:]
    store = open_store(url, home / "artifacts")
    try:
        _consistent(store)
        runs = store.runs(MODEL)
        assert [r for r in runs if r.outcome == "running"] == []
        # a run a kill cut off is closed as interrupted or, a claimed job whose lease died with
        # its process, re-queued (then executed again, or failed) with the reason
        settled = {r.id: r for r in runs}
        for run_id in cut_runs:
            run = settled[run_id]
            assert run.reason == INTERRUPTED or "attempt" in run.reason or run.attempts > 1, run
        loop = ModelLoop(load_policy(DEMO_POLICY), store, Metrics())
        assert store.model(MODEL).champion_version is not None
        assert loop.champion() is not None
    finally:
        store.close()
    print(f"{KILLS} kills, {len(cut_runs)} of them left a run running; all recovered")
