"""The daemon as the image and the Kubernetes Deployment run it, without Docker (there is no
Docker daemon in CI): the runtime stage's environment (Dockerfile ENV), the Deployment's
arguments, a root file system made read-only (readOnlyRootFilesystem) in a private mount
namespace with only the volumes writable, the API and /metrics bound to every interface. The
probes' routes answer, the schema is created in REOPTD_HOME, and SIGTERM stops it cleanly.

Needs root and util-linux's `unshare` (the test set-up runs as root); it fails, never skips,
without them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from _deploy import runtime_env

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "deploy" / "kubernetes" / "base" / "deployment.yaml"
POLICIES = ROOT / "deploy" / "compose" / "policies"
#: a private mount namespace: the volume directory bound onto itself (stays writable), then the
#: root remounted read-only; "$0" is the volume directory, "$@" the daemon's command
READ_ONLY_ROOT = (
    'mount --make-rprivate / && mount --bind "$0" "$0" && mount -o remount,bind,ro / && exec "$@"'
)
START = 300.0  # seconds: importing torch and sklearn on a loaded 2-core machine is slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the daemon exited with {process.returncode}:\n{log.read_text()}")
        status, body = _get(url)
        if status == 200:
            return body
        time.sleep(1)
    pytest.fail(f"{url} did not answer 200 within {START:g}s:\n{log.read_text()}")


@pytest.mark.external
@pytest.mark.slow
def test_daemon_runs_on_a_read_only_root(tmp_path: Path) -> None:
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"], check=False).returncode:
        pytest.fail(
            "needs root and `unshare -m` (util-linux) to make the root file system read-only"
        )
    volumes = tmp_path / "volumes"
    home, cache, tmp = volumes / "home", volumes / "cache", volumes / "tmp"
    for directory in (home, cache, tmp):
        directory.mkdir(parents=True)

    # the image's environment, its volume paths moved under the test's directory
    image = runtime_env()
    moved = {image["REOPTD_HOME"]: str(home), image["XDG_CACHE_HOME"]: str(cache)}
    env = {}
    for key, value in image.items():
        for inside, outside in moved.items():
            value = value.replace(inside, outside)
        env[key] = value
    api, metrics = _free_port(), _free_port()
    env.update(
        PATH=f"{Path(sys.executable).parent}:/usr/bin:/bin",
        PYTHONPATH=str(ROOT / "daemon"),
        TMPDIR=str(tmp),  # the Deployment mounts an emptyDir on /tmp
        REOPTD_API_PORT=str(api),
        REOPTD_METRICS_PORT=str(metrics),
        REOPTD_API_TOKEN="test-token",
    )
    assert env["REOPTD_API_HOST"] == "0.0.0.0"

    # the Deployment's arguments, its policy mount pointed at the compose stack's policies
    container = yaml.safe_load(DEPLOYMENT.read_text())["spec"]["template"]["spec"]["containers"][0]
    args = [str(POLICIES) if a == "/etc/reoptd/policies" else a for a in container["args"]]
    command = [sys.executable, "-m", "reoptd.cli", *args, "--exit-after", "600"]

    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", READ_ONLY_ROOT, str(volumes), *command],
            env=env,
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert _wait_for(f"http://127.0.0.1:{api}/healthz", process, log)
        # the root really is read-only for the daemon (mount options of its "/")
        root_mount = next(
            line.split()
            for line in Path(f"/proc/{process.pid}/mountinfo").read_text().splitlines()
            if line.split()[4] == "/"
        )
        assert "ro" in root_mount[5].split(","), root_mount
        ready = _wait_for(f"http://127.0.0.1:{api}/readyz", process, log)
        assert '"database":true' in ready and '"scheduler":true' in ready
        status, body = _get(f"http://127.0.0.1:{metrics}/metrics")
        assert status == 200 and "reoptd_" in body
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=180)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"SIGTERM did not stop the daemon in 180s:\n{log.read_text()}")

    text = log.read_text()
    assert process.returncode == 0, text
    assert "Read-only file system" not in text and "Traceback" not in text, text
    assert "reoptd.service: stopped" in text
    assert (home / "reoptd.db").is_file()  # the schema, migrated at start, in REOPTD_HOME
