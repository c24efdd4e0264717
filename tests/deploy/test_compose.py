"""deploy/compose/: the compose file against the Compose specification's JSON Schema, its
Prometheus configuration (with the shipped rules, laid out as the containers see them) through
promtool, its Alertmanager configuration through amtool, and the wiring between them: every file
it mounts exists, every secret it needs is in .env.example and .env stays out of git, Prometheus
scrapes the reoptd service on its metrics port and sends to the Alertmanager service, Grafana
gets the shipped datasource pointed at the Prometheus service.

Nothing here starts containers: there is no Docker daemon in CI. promtool and amtool come from
the Debian packages prometheus and prometheus-alertmanager (tests/install-servers.sh).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reoptd.policy import load_policy
from reoptd.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
MISSING = (
    "{} is not installed: run `bash tests/install-servers.sh` as root (make test does), which "
    "installs the Debian package {}"
)


def _tool(name: str, package: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(MISSING.format(name, package))
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _binds(service: dict[str, Any]) -> list[tuple[Path, str]]:
    """(host path, container path) of a service's bind mounts (short syntax), ${VAR:-default}
    sources taken at their default."""
    out = []
    for volume in service.get("volumes", []):
        volume = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", volume)
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            out.append(((COMPOSE_DIR / source).resolve(), target))
    return out


def _layout(service: dict[str, Any], root: str, into: Path) -> None:
    """Copy a service's bind mounts under ``root`` (in the container) to ``into``, so a checker
    resolves relative paths in a configuration file exactly as the container would."""
    for source, target in _binds(service):
        if not target.startswith(root + "/"):
            continue
        destination = into / target.removeprefix(root + "/")
        if source.is_dir():
            shutil.copytree(source, destination)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def test_compose_spec_schema() -> None:
    tool = _tool("check-jsonschema", "check-jsonschema (a dev dependency)")
    result = _run(tool, "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_spec_schema_really_validates(tmp_path: Path) -> None:
    """Not vacuous: the same call refuses a service with a misspelt key."""
    tool = _tool("check-jsonschema", "check-jsonschema (a dev dependency)")
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  reoptd:\n    image: reoptd\n    enviroment: {A: b}\n")
    result = _run(tool, "--builtin-schema", "vendor.compose-spec", str(bad))
    assert result.returncode != 0 and "enviroment" in result.stdout


def test_the_stack_is_complete(compose: dict[str, Any]) -> None:
    services = {"reoptd", "postgres", "prometheus", "alertmanager", "grafana"}
    assert set(compose["services"]) == services
    reoptd = compose["services"]["reoptd"]
    assert reoptd["build"]["dockerfile"] == "Dockerfile"
    assert (COMPOSE_DIR / reoptd["build"]["context"] / "Dockerfile").is_file()
    assert "postgresql+psycopg://" in reoptd["environment"]["REOPTD_DB_URL"]
    assert "@postgres:5432/" in reoptd["environment"]["REOPTD_DB_URL"]
    # every published port is on the host's loopback only
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name}: {port}"


def test_every_bind_mount_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for source, target in _binds(service):
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_policies_are_mounted_from_a_directory_and_valid(compose: dict[str, Any]) -> None:
    reoptd = compose["services"]["reoptd"]
    directory = reoptd["command"][reoptd["command"].index("--policies") + 1]
    sources = [source for source, target in _binds(reoptd) if target == directory]
    assert len(sources) == 1 and sources[0].is_dir(), sources
    files = sorted(sources[0].glob("*.yaml"))
    assert files, f"no policy in {sources[0]}"
    for path in files:
        load_policy(path)
    # the compose demo is the shipped demo policy, not a copy drifting from it
    assert (sources[0] / "demo.yaml").read_bytes() == (ROOT / "policies" / "demo.yaml").read_bytes()


def test_secrets_come_from_an_uncommitted_env_file() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert {"POSTGRES_PASSWORD", "REOPTD_API_TOKEN", "GRAFANA_ADMIN_PASSWORD"} <= required
    example = (COMPOSE_DIR / ".env.example").read_text()
    given = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert required <= given, f".env.example lacks {sorted(required - given)}"
    optional = set(re.findall(r"\$\{(\w+):-", text))
    assert optional <= set(re.findall(r"^#?\s*(\w+)=", example, re.MULTILINE))
    # no literal secret in the compose file itself
    assert not re.search(r"(PASSWORD|TOKEN):\s*[\"']?(?!\$\{)\w", text)
    ignored = _run("git", "-C", str(ROOT), "check-ignore", "-q", "deploy/compose/.env")
    assert ignored.returncode == 0, "deploy/compose/.env is not in .gitignore"


def test_prometheus_config_with_the_shipped_rules(compose: dict[str, Any], tmp_path: Path) -> None:
    promtool = _tool("promtool", "prometheus")
    prometheus = compose["services"]["prometheus"]
    _layout(prometheus, "/etc/prometheus", tmp_path)
    config = tmp_path / "prometheus.yml"
    result = _run(promtool, "check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    # the rules it loads are the shipped file itself, not a copy
    loaded = yaml.safe_load(config.read_text())["rule_files"]
    assert [(tmp_path / r).resolve() for r in loaded] == [tmp_path / "reoptd" / "alerts.yml"]
    assert (tmp_path / "reoptd" / "alerts.yml").read_bytes() == (
        ROOT / "deploy" / "prometheus" / "alerts.yml"
    ).read_bytes()
    assert "SUCCESS" in result.stdout and "rules found" in result.stdout


def test_prometheus_reaches_the_services(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = jobs["reoptd"]["static_configs"][0]["targets"]
    assert targets == [f"reoptd:{Settings().metrics_port}"]
    alertmanagers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanagers == ["alertmanager:9093"]
    assert "alertmanager" in compose["services"]


def test_alertmanager_config() -> None:
    amtool = _tool("amtool", "prometheus-alertmanager")
    result = _run(amtool, "check-config", str(COMPOSE_DIR / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_grafana_gets_the_shipped_dashboards_and_datasource(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {target: source for source, target in _binds(grafana)}
    assert mounts["/var/lib/grafana/dashboards/reoptd"] == ROOT / "grafana" / "dashboards"
    provider = mounts["/etc/grafana/provisioning/dashboards"]
    assert provider == ROOT / "grafana" / "provisioning" / "dashboards"
    providers = yaml.safe_load((provider / "reoptd.yml").read_text())["providers"]
    paths = [p["options"]["path"] for p in providers]
    assert paths == ["/var/lib/grafana/dashboards/reoptd"]
    # the shipped datasource, only its URL pointed at the Prometheus service
    datasources = mounts["/etc/grafana/provisioning/datasources"]
    ours = yaml.safe_load((datasources / "prometheus.yml").read_text())
    shipped = yaml.safe_load(
        (ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert ours["datasources"][0].pop("url") == "http://prometheus:9090"
    shipped["datasources"][0].pop("url")
    assert ours == shipped
