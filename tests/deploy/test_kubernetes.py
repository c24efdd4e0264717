"""deploy/kubernetes/: each overlay rendered with `kubectl kustomize`, its core objects validated
strictly against the Kubernetes schemas kubernetes-validate bundles (offline), the Prometheus
Operator objects (no bundled schema) checked by what they must do: the PrometheusRule's rules are
deploy/prometheus/alerts.yml and pass `promtool check rules`, the ServiceMonitor selects the
Service's metrics port. Then the promises deploy/README.md makes of the Deployment: probes on
/healthz and /readyz, a non-root user with a read-only root file system and writable volumes
where it writes, resources, a Secret with the API token (and the database URL on PostgreSQL),
one replica on a volume for SQLite, several with object-store artifacts on PostgreSQL.

kubectl is not a Python package: the test fails (never skips) when it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from reoptd.policy import load_policy
from reoptd.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("sqlite", "postgres")
#: the oldest Kubernetes release the manifests are kept valid for, and kubernetes-validate's newest
VERSIONS = ("1.30.0", None)
CRDS = {"PrometheusRule", "ServiceMonitor"}


def _tool(name: str, how: str) -> str:
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: {how}")
    return found


def _kubectl() -> str:
    return _tool(
        "kubectl",
        "install it (https://kubernetes.io/docs/tasks/tools/; Debian: the kubectl package of"
        " pkgs.k8s.io) to render the kustomize overlays",
    )


def _run(*command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of deploy/kubernetes with each overlay's secret.env made from its example (the
    real ones are never committed), as an operator would before `kubectl apply -k`."""
    copy = tmp_path_factory.mktemp("kubernetes") / "kubernetes"
    shutil.copytree(KUBERNETES, copy, ignore=shutil.ignore_patterns("secret.env", "__pycache__"))
    for overlay in OVERLAYS:
        example = copy / "overlays" / overlay / "secret.env.example"
        shutil.copy(example, example.with_suffix(""))
    return copy


def _render(tree: Path, overlay: str) -> list[dict[str, Any]]:
    result = _run(_kubectl(), "kustomize", str(tree / "overlays" / overlay))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, tree: Path) -> Iterator[tuple[str, list[dict]]]:
    yield request.param, _render(tree, request.param)


def _one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def test_generated_copies_are_current() -> None:
    result = _run(sys.executable, str(KUBERNETES / "generate.py"), "--check")
    assert result.returncode == 0, result.stderr


def test_core_objects_pass_strict_schema_validation(
    rendered: tuple[str, list[dict]], tmp_path: Path
) -> None:
    overlay, objects = rendered
    core = [o for o in objects if o["kind"] not in CRDS]
    assert {o["kind"] for o in core} >= {
        "ConfigMap",
        "Secret",
        "Service",
        "Deployment",
        "NetworkPolicy",
    }
    path = tmp_path / f"{overlay}.yaml"
    path.write_text(yaml.safe_dump_all(core))
    tool = _tool("kubernetes-validate", "a dev dependency (make test installs them)")
    for version in VERSIONS:
        command = [tool, "--strict", "--quiet", str(path)]
        if version:
            command[1:1] = ["-k", version]
        result = _run(*command)
        assert result.returncode == 0, f"{version or 'newest'}: {result.stdout}{result.stderr}"


def test_strict_validation_really_validates(tmp_path: Path) -> None:
    """Not vacuous: the same call refuses a misspelt field of a container."""
    bad = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x"},
        "spec": {"containers": [{"name": "x", "image": "x", "readinesProbe": {}}]},
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    tool = _tool("kubernetes-validate", "a dev dependency (make test installs them)")
    result = _run(tool, "--strict", "--quiet", str(path))
    assert result.returncode != 0 and "readinesProbe" in result.stdout + result.stderr


def test_prometheus_rule_is_the_shipped_rule_file(
    rendered: tuple[str, list[dict]], tmp_path: Path
) -> None:
    _overlay, objects = rendered
    rule = _one(objects, "PrometheusRule")
    shipped = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == shipped
    groups = tmp_path / "rules.yml"
    groups.write_text(yaml.safe_dump(rule["spec"]))
    promtool = _tool(
        "promtool",
        "run `bash tests/install-servers.sh` as root (make test does), which installs the Debian"
        " package prometheus",
    )
    result = _run(promtool, "check", "rules", str(groups))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = _one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_service_and_service_monitor_reach_the_pod(rendered: tuple[str, list[dict]]) -> None:
    _overlay, objects = rendered
    pod = _one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in _container(objects)["ports"]}
    defaults = Settings()
    assert ports == {"api": defaults.api_port, "metrics": defaults.metrics_port}

    service = _one(objects, "Service")
    assert service["spec"]["selector"].items() <= pod.items()
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "api": "api",
        "metrics": "metrics",
    }
    monitor = _one(objects, "ServiceMonitor")
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"

    network = _one(objects, "NetworkPolicy")
    assert network["spec"]["podSelector"]["matchLabels"].items() <= pod.items()
    allowed = {p["port"] for rule in network["spec"]["ingress"] for p in rule["ports"]}
    assert allowed == set(ports)


def test_deployment_probes_resources_and_security(rendered: tuple[str, list[dict]]) -> None:
    _overlay, objects = rendered
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    container = _container(objects)
    assert container["args"][:1] == ["run"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api"}
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])

    # non-root: the image's numeric user (Dockerfile USER), read-only root, no privileges
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user.group(1))
    assert pod["securityContext"]["fsGroup"] == int(user.group(2))
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False

    # every path it writes is a writable volume; the policies are read-only
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    for path in (env["REOPTD_HOME"], "/tmp", "/var/cache/reoptd"):
        volume = volumes[mounts[path]["name"]]
        assert not mounts[path].get("readOnly"), path
        assert {"emptyDir", "persistentVolumeClaim"} & set(volume), path
    policies = container["args"][container["args"].index("--policies") + 1]
    assert mounts[policies]["readOnly"] is True
    assert env["REOPTD_API_HOST"] == env["REOPTD_METRICS_HOST"] == "0.0.0.0"


def test_policies_config_map(rendered: tuple[str, list[dict]], tmp_path: Path) -> None:
    _overlay, objects = rendered
    container = _container(objects)
    policies = container["args"][container["args"].index("--policies") + 1]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == policies)
    pod = _one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    config_map = next(
        o
        for o in objects
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == volume["configMap"]["name"]
    )
    assert config_map["data"], "no policy in the ConfigMap"
    for name, text in config_map["data"].items():
        path = tmp_path / name
        path.write_text(text)
        load_policy(path)  # raises with file, line and field on an invalid policy


def _secret(objects: list[dict[str, Any]]) -> dict[str, Any]:
    container = _container(objects)
    names = [s["secretRef"]["name"] for s in container["envFrom"]]
    secrets = [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] in names]
    assert len(secrets) == 1, names
    return secrets[0]


def test_sqlite_overlay(tree: Path) -> None:
    objects = _render(tree, "sqlite")
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 1  # SQLite: one writer process
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    pod = deployment["spec"]["template"]["spec"]
    home = next(v for v in pod["volumes"] if v["name"] == "home")
    assert set(home) == {"name", "persistentVolumeClaim"}
    claim = _one(objects, "PersistentVolumeClaim")
    assert home["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    env = {e["name"] for e in _container(objects)["env"]}
    assert "REOPTD_DB_URL" not in env and "REOPTD_ARTIFACTS" not in env
    assert set(_secret(objects)["data"]) == {"REOPTD_API_TOKEN"}


def test_postgres_overlay(tree: Path) -> None:
    objects = _render(tree, "postgres")
    deployment = _one(objects, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    env = {e["name"]: e.get("value") for e in _container(objects)["env"]}
    assert env["REOPTD_ARTIFACTS"].startswith("s3://")
    secret = _secret(objects)
    assert {"REOPTD_API_TOKEN", "REOPTD_DB_URL"} <= set(secret["data"])
    example = (KUBERNETES / "overlays" / "postgres" / "secret.env.example").read_text()
    assert re.search(r"^REOPTD_DB_URL=postgresql\+psycopg://", example, re.MULTILINE)
    assert not any(o["kind"] == "PersistentVolumeClaim" for o in objects)
    budget = _one(objects, "PodDisruptionBudget")
    pod = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod.items()


def test_secret_env_files_stay_out_of_git() -> None:
    for overlay in OVERLAYS:
        directory = KUBERNETES / "overlays" / overlay
        assert (directory / "secret.env.example").is_file()
        path = f"deploy/kubernetes/overlays/{overlay}/secret.env"
        assert _run("git", "-C", str(ROOT), "check-ignore", "-q", path).returncode == 0, path
