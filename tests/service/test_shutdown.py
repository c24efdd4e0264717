"""``reoptd run`` stops within seconds on SIGTERM even while a step runs that would never end:
the process executor (the daemon's default) terminates the run's child process, and the run is
recorded as failed with the reason, not left ``running``."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore

REOPTD = str(Path(sys.executable).parent / "reoptd")

RUNAWAY = {
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier": (
        "estimator: sklearn.neural_network.MLPClassifier"
    ),
    "params: {max_iter: 150, learning_rate: 0.05, max_depth: 3, random_state: 0}": (
        "params: {max_iter: 1000000000000, tol: 0, n_iter_no_change: 1000000000000}"
    ),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], Path]:
    """``reoptd run`` on a policy whose retrain never ends (no budget written: the default 1h
    holds), with the process executor; returns once the step runs in its child."""
    policies = tmp_path / "policies"
    policies.mkdir()
    text = DEMO_POLICY.read_text()
    for old, new in RUNAWAY.items():
        text = text.replace(old, new)
    (policies / "runaway.yaml").write_text(text)
    home = tmp_path / "home"
    env = {**os.environ, "REOPTD_HOME": str(home), "REOPTD_EXECUTOR": "process"}
    proc = subprocess.Popen(
        [
            REOPTD,
            "run",
            "--verbose",
            "--policies",
            str(policies),
            "--clock",
            "simulated",
            "--metrics-port",
            str(_free_port()),
            "--no-api",
            "--exit-after",
            "600",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True).start()
    deadline = time.monotonic() + 180  # the first run waits for the forkserver's imports
    while time.monotonic() < deadline and proc.poll() is None:
        if any("step retrain started" in line for line in lines):
            break
        time.sleep(0.5)
    if not any("step retrain started" in line for line in lines):
        proc.kill()
        pytest.fail("".join(lines))
    time.sleep(2)  # the child is deep in its endless fit
    return proc, lines, home


def _child_pid(lines: list[str]) -> int:
    (line,) = [x for x in lines if "run process" in x]
    return int(re.search(r"run process (\d+) started", line).group(1))  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a container's init to reap it counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_sigterm_stops_the_daemon_during_a_runaway_step(tmp_path: Path) -> None:
    proc, lines, home = _start(tmp_path)
    child = _child_pid(lines)
    try:
        stop_started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stopped_in = time.monotonic() - stop_started
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)  # the reader thread takes the last lines
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert stopped_in < 20, output  # a bound on behaviour (it does not wait on the step)
    assert "received SIGTERM" in output and "Traceback" not in output
    assert not _alive(child)
    store = SqlStore(f"sqlite:///{home / 'reoptd.db'}", home / "artifacts")
    try:
        runs = store.runs("demo_churn")
        assert runs and all(r.outcome != "running" for r in runs)
        assert runs[-1].outcome == "failed" and "shutting down" in runs[-1].reason
        assert store.model("demo_churn").champion_version is None
    finally:
        store.close()


@pytest.mark.slow
def test_a_runaway_step_does_not_outlive_a_killed_daemon(tmp_path: Path) -> None:
    proc, lines, _home = _start(tmp_path)
    child = _child_pid(lines)
    assert _alive(child)
    proc.kill()  # kill -9: no shutdown path runs
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60  # a bound on a hang: the orphan notices within seconds
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive(child), "".join(lines)
