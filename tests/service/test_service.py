"""The live service: APScheduler jobs, /metrics scraped over real HTTP, the CLI daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from reoptd.clock import AcceleratedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy
from reoptd.service import Service
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store

REOPTD = str(Path(sys.executable).parent / "reoptd")


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_service_detects_drift_promotes_and_exports_it_on_metrics(
    demo_policy: Policy, sqlite_registry: Store
) -> None:
    clock = AcceleratedClock(demo.START, speed=3000)  # a 30 min check every 0.6 s
    metrics = Metrics()
    metrics.watch_champions(sqlite_registry, clock)
    service = Service(
        [ModelLoop(demo_policy, sqlite_registry, metrics)], clock, metrics, metrics_port=0
    )
    service.start()
    name = demo_policy.model
    try:
        deadline = time.monotonic() + 90
        samples: dict = {}
        while time.monotonic() < deadline:
            samples = _scrape(service.metrics_url)
            promotions = _value(samples, "reoptd_promotions_total", model=name) or 0
            # The champion count is read from the store at scrape time and the run's counter is
            # exported right after the run: wait until the scrape has both.
            if promotions >= 2 and _promoted_runs(samples, name) >= promotions:
                break
            time.sleep(0.5)
    finally:
        service.stop()
    assert (_value(samples, "reoptd_promotions_total", model=name) or 0) >= 2, samples
    assert _value(samples, "reoptd_drift_share", model=name) is not None
    assert _value(samples, "reoptd_checks_total", model=name, outcome="ok") >= 3
    fired = _value(
        samples,
        "reoptd_reoptimizations_total",
        model=name,
        trigger="drift_share",
        outcome="promoted",
    )
    assert fired >= 1
    champion = sqlite_registry.model(name).champion_version
    (made,) = [e for e in sqlite_registry.events(name) if e.to_version == champion][-1:]
    assert made.reason  # the promotion says why; the annotation of the dashboards shows it
    info = {"model": name, "version": str(champion), "trigger": "drift_share"}
    assert _value(samples, "reoptd_champion_info", **info, reason=made.reason) == 1
    assert _value(samples, "reoptd_model_size_bytes", model=name) > 0
    assert _value(samples, "reoptd_feature_drift_score", model=name, feature="tenure") is not None
    assert _value(samples, "reoptd_check_duration_seconds_count", model=name) >= 3


def _promoted_runs(samples, name: str) -> float:
    return sum(
        value
        for (metric, labels), value in samples.items()
        if metric == "reoptd_reoptimizations_total"
        and ("model", name) in labels
        and ("outcome", "promoted") in labels
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_daemon_skips_a_bad_policy_runs_the_rest_and_stops_on_sigterm(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    shutil.copy(DEMO_POLICY, policies / "demo.yaml")
    (policies / "broken.yaml").write_text(
        DEMO_POLICY.read_text()
        .replace("model: demo_churn", "model: other")
        .replace("cooldown:", "coldown:")
    )
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}
    env.pop("REOPTD_API_TOKEN", None)
    port = _free_port()
    api_port = _free_port()
    proc = subprocess.Popen(
        [
            REOPTD,
            "run",
            "--policies",
            str(policies),
            "--clock",
            "simulated",
            "--speed",
            "2000",
            "--metrics-port",
            str(port),
            "--api-port",
            str(api_port),
            "--exit-after",
            "120",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        status: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(1)
            out = subprocess.run(
                [REOPTD, "status", "--json"], env=env, capture_output=True, text=True
            )
            if out.returncode == 0:
                status = json.loads(out.stdout)
                models = status["models"]
                if models and (models[0]["champion_version"] or 0) >= 2:
                    break
        scraped = _scrape(f"http://127.0.0.1:{port}/metrics")
        ready = httpx.get(f"http://127.0.0.1:{api_port}/readyz", timeout=10)
        api_models = httpx.get(f"http://127.0.0.1:{api_port}/models", timeout=10).json()
        stop_started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=15)
        stopped_in = time.monotonic() - stop_started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert stopped_in < 10
    assert "broken.yaml" in output and "did you mean `cooldown`" in output
    assert "skipping policy" in output and "Traceback" not in output
    assert "received SIGTERM" in output and "stopped" in output
    assert f"API on http://127.0.0.1:{api_port}" in output
    assert "mutating routes disabled" in output  # no REOPTD_API_TOKEN in this environment
    assert ready.status_code == 200 and ready.json()["scheduler"] is True
    assert ready.json()["models"] == ["demo_churn"]  # the one replica checks every model
    assert [m["name"] for m in api_models] == ["demo_churn"]

    (model,) = status["models"]
    assert set(model) >= {
        "name",
        "champion_version",
        "versions",
        "last_check",
        "drift_share",
        "last_decision",
    }
    assert model["name"] == "demo_churn" and model["champion_version"] >= 2
    assert model["versions"] >= 2 and model["last_decision"]["reasons"]
    assert _value(scraped, "reoptd_promotions_total", model="demo_churn") >= 2


def test_check_command_runs_one_cycle_and_errors_are_not_tracebacks(tmp_path: Path) -> None:
    env = {**os.environ, "REOPTD_HOME": str(tmp_path)}
    first = subprocess.run([REOPTD, "check", "demo_churn"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "promoted v1" in first.stderr
    second = subprocess.run(
        [REOPTD, "check", "demo_churn"], env=env, capture_output=True, text=True
    )
    assert second.returncode == 0 and "check v1 rows=" in second.stderr
    missing = subprocess.run([REOPTD, "check", "nope"], env=env, capture_output=True, text=True)
    assert missing.returncode == 1
    assert "no model named 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    shown = subprocess.run(
        [REOPTD, "models", "show", "demo_churn"], env=env, capture_output=True, text=True
    )
    # the versions table (#15: columns with headers) has v1's row with status champion
    assert re.search(r"^\s*v1\s+champion\s", shown.stdout, re.MULTILINE), shown.stdout


def test_optimize_promote_and_rollback_from_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}

    def reoptd(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([REOPTD, *args], env=env, capture_output=True, text=True)

    assert reoptd("check", "demo_churn").returncode == 0  # bootstraps v1
    report = tmp_path / "run.json"
    forced = reoptd("optimize", "demo_churn", "--report", str(report))
    assert forced.returncode == 0, forced.stderr
    document = json.loads(report.read_text())
    assert document["trigger"] == "manual" and document["challenger_version"] == 2
    assert document["outcome"] in ("promoted", "rejected") and document["reason"]
    assert set(document["steps"]) == {"retrain", "validate"}
    assert document["policy"]["model"] == "demo_churn"

    def champion() -> int:
        return json.loads(reoptd("status", "--json").stdout)["models"][0]["champion_version"]

    if document["outcome"] == "rejected":
        promoted = reoptd("models", "promote", "demo_churn", "2")
        assert promoted.returncode == 0 and "v1 -> v2" in promoted.stdout
    assert champion() == 2
    rolled = reoptd("models", "rollback", "demo_churn")
    assert rolled.returncode == 0 and "v2 -> v1" in rolled.stdout
    assert champion() == 1
    listed = reoptd("models", "list")
    # the models table (#15: columns with headers): MODEL TASK CHAMPION VERSIONS
    assert re.search(r"^demo_churn\s+classification\s+v1\s+2$", listed.stdout, re.MULTILINE), (
        listed.stdout
    )
    again = reoptd("models", "promote", "demo_churn", "1")
    assert again.returncode == 1 and "already the champion" in again.stderr
