"""Replicas on one PostgreSQL: two ``reoptd run`` processes, each model checked by one of them;
kill -9 the one holding the models and the other checks every one of them within two check
intervals; no check done twice, no run left ``running``."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reoptd.settings import DEMO_POLICY
from reoptd.store import Store
from reoptd.store.sql import SqlStore

MODELS = ("replica_a", "replica_b")
SPEED = 450.0  # a check every 30 simulated minutes: every 4 s of real time
EVERY = timedelta(minutes=30)


def _replica(home: Path, policies: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "REOPTD_HOME": str(home),  # one artifact directory: the replicas share the registry
        "REOPTD_DB_URL": url,
        "REOPTD_POLICIES": str(policies),
        "REOPTD_EXECUTOR": "local",  # worker processes, as deployed
        "REOPTD_SLOTS": "1",
        "OMP_NUM_THREADS": "1",
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                *("-m", "reoptd.cli", "run", "--no-api", "--metrics-port", "0"),
                *("--speed", str(SPEED)),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _owner_of(store: Store, pid: int) -> str | None:
    return next((p.owner for p in store.processes() if p.pid == pid), None)


def _clock_of(store: Store, pid: int) -> datetime:
    """The simulated time now of the live daemon ``pid``: its last reading plus the real time
    since, times its speed. (``Store.daemon_clock`` reads the newest daemon, which just after a
    kill may be the dead one: its reading is up to a heartbeat old, 5 s x SPEED = 37 minutes.)"""
    record = next(p for p in store.processes() if p.pid == pid)
    assert record.clock_at is not None and record.clock_speed is not None
    return record.clock_at + (datetime.now(UTC) - record.seen_at) * record.clock_speed


def _wait(what: str, until: object, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if until():  # type: ignore[operator]
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in logs)
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


@pytest.mark.external
@pytest.mark.slow
def test_a_killed_replicas_models_are_checked_by_the_other_within_two_intervals(
    postgres_url: str, tmp_path: Path
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    text = DEMO_POLICY.read_text()
    for name in MODELS:
        (policies / f"{name}.yaml").write_text(text.replace("model: demo_churn", f"model: {name}"))
    home = tmp_path / "home"
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    store = SqlStore(postgres_url, home / "artifacts")
    first = _replica(home, policies, postgres_url, logs[0])
    second: subprocess.Popen[bytes] | None = None
    try:
        _wait("the first replica's lease", lambda: _owner_of(store, first.pid), 180, logs)
        a = _owner_of(store, first.pid)
        _wait(
            "the first replica to own and bootstrap every model",
            lambda: (
                store.model_owners() == dict.fromkeys(MODELS, a)
                and {m.name for m in store.models() if m.champion_version} == set(MODELS)
            ),
            120,
            logs,
        )
        second = _replica(home, policies, postgres_url, logs[1])
        _wait("the second replica's lease", lambda: _owner_of(store, second.pid), 180, logs)
        b = _owner_of(store, second.pid)
        assert b is not None and b != a
        counts = {m: len(store.checks(m, limit=1000)) for m in MODELS}
        _wait(
            "two more checks of each model while both replicas run",
            lambda: all(len(store.checks(m, limit=1000)) >= counts[m] + 2 for m in MODELS),
            60,
            logs,
        )
        assert store.model_owners() == dict.fromkeys(MODELS, a)  # the second took nothing

        # kill -9 the replica holding every model; reap it (a zombie's pid still "exists")
        seen = {m: len(store.checks(m, limit=1000)) for m in MODELS}
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        killed_at = _clock_of(store, second.pid)  # the surviving daemon's time at the kill
        _wait(
            "the second replica to check every model",
            lambda: all(len(store.checks(m, limit=1000)) > seen[m] for m in MODELS),
            60,
            logs,
        )
        assert store.model_owners() == dict.fromkeys(MODELS, b)
        for model in MODELS:
            taken_over = store.checks(model, limit=1000)[seen[model]]
            # its next tick after the kill: within two check intervals of the daemon's clock
            assert taken_over.at <= killed_at + 2 * EVERY, (model, taken_over.at, killed_at)
            ats = [c.at for c in store.checks(model, limit=1000)]
            # no check done twice: one replica at a time, one check per interval
            assert all(
                later - earlier >= EVERY / 2 for earlier, later in itertools.pairwise(ats)
            ), ats
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, logs[1].read_text(errors="replace")[-3000:]
        for model in MODELS:
            assert [r for r in store.runs(model) if r.outcome == "running"] == []
        assert store.model_owners() == {}  # a replica that stops gives its models up
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        store.close()
