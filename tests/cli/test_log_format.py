"""`reoptd run --log-format json`: every line the daemon logs is one JSON object."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_run_logs_one_json_object_per_line(tmp_path: Path) -> None:
    env = {**os.environ, "REOPTD_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    command = ["run", "--log-format", "json", "--exit-after", "3", "--no-api"]
    done = subprocess.run(
        [sys.executable, "-m", "reoptd.cli", *command, "--metrics-port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # each line parses alone
    assert records and all({"time", "level", "name", "message"} <= set(r) for r in records)
    assert any(r["message"].startswith("reoptd starting") for r in records)
    assert any("promoted v1" in r["message"] for r in records)
