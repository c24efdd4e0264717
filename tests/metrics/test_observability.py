"""The Prometheus configuration, alert rules and Grafana dashboards against the real daemon.

Every metric name a dashboard or an alert uses must be one the daemon exports (collected from a
real scrape of the demo), promtool must accept the configuration, the rules, their unit tests
and the daemon's /metrics, and a real Prometheus scraping the demo must evaluate every dashboard
query (each returning data) and every alert expression.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reoptd.clock import AcceleratedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.policy import Policy, load_policy
from reoptd.service import Service
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store
from reoptd.store.sql import SqlStore

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS = Path("/usr/bin/prometheus")
MODEL = "demo_churn"
MISSING = (
    "{} is not installed: run `bash tests/install-servers.sh` as root (make test does), "
    "which installs the Debian package `prometheus`"
)

# Values of the Grafana variables when the queries are sent to Prometheus by hand. A variable
# not listed here fails the test: add it with a value that makes sense for the demo.
VARIABLES = {
    "model": MODEL,
    "metric": "f1",
    "window": "1m",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
    "__range_s": "300",
}

# -- what the dashboards and alerts ask Prometheus ------------------------------------------------


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows, collapsed or not


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) of every panel target of every dashboard."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    where = f"{path.name}: {panel['title']!r} {target['refId']}"
                    out.append((where, target["expr"]))
    return out


def annotation_queries() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for annotation in board["annotations"]["list"]:
            if annotation.get("expr"):
                out.append((f"{path.name}: annotation {annotation['name']!r}", annotation["expr"]))
    return out


def variable_queries() -> list[tuple[str, str]]:
    """(where, metric) of the `label_values(metric, label)` template variables."""
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]["query"]
                match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
                assert match, f"{path.name}: unexpected variable query {query!r}"
                out.append((f"{path.name}: variable {variable['name']!r}", match[1]))
    return out


def alert_queries() -> list[tuple[str, str]]:
    out = []
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            out.append((f"alerts.yml: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def substitute(expr: str) -> str:
    """``expr`` with Grafana's ``$var``, ``${var}``, ``${var:format}`` and ``[[var]]`` replaced."""

    def value(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in VARIABLES:
            raise KeyError(f"no test value for Grafana variable ${name} in {expr!r}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label names, functions, keywords and
    durations left out)."""
    text = _STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    return {
        name
        for name, call in _IDENTIFIER.findall(text)
        if not call and name.lower() not in _KEYWORDS
    }


def test_metric_names_are_extracted_from_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, step) (rate(a_bucket{model="x{y}"}[5m] offset 1h)))'
        " - on(job, instance) group_right b > bool 3 * c unless ignoring(metric) d or vector(1e3)"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}
    assert substitute("x[$window] + y{model=~'${model}'} [[model]]") == (
        f"x[1m] + y{{model=~'{MODEL}'}} {MODEL}"
    )


# -- a real daemon -----------------------------------------------------------------------------


def _scrape_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        return response.read().decode()


def _promotions(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "reoptd_promotions_total" and sample.labels["model"] == MODEL:
                return sample.value
    return 0.0


def _service(policy: Policy, registry: Store, port: int = 0) -> Service:
    """The demo on an accelerated clock (a 30 min check every 0.6 s), with the process metrics
    the CLI daemon exports."""
    clock = AcceleratedClock(demo.START, speed=3000)
    metrics = Metrics(process=True)
    metrics.watch_champions(registry, clock)
    return Service([ModelLoop(policy, registry, metrics)], clock, metrics, metrics_port=port)


@pytest.fixture(scope="module")
def demo_scrape() -> Iterator[str]:
    """/metrics of the daemon once it has bootstrapped, detected the drift and promoted."""
    workdir = Path(tempfile.mkdtemp(prefix="reoptd-obs-"))
    registry = SqlStore(f"sqlite:///{workdir / 'reoptd.db'}", workdir / "artifacts")
    service = _service(load_policy(DEMO_POLICY), registry)
    service.start()
    try:
        deadline = time.monotonic() + 90
        text = _scrape_text(service.metrics_url)
        while _promotions(text) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            text = _scrape_text(service.metrics_url)
    finally:
        service.stop()
        registry.close()
        shutil.rmtree(workdir, ignore_errors=True)
    assert _promotions(text) >= 2, "the demo did not promote a second version within 90 s"
    yield text


def test_dashboards_and_alerts_only_use_metrics_the_daemon_exports(demo_scrape: str) -> None:
    exported = {"up"} | {
        sample.name
        for family in text_string_to_metric_families(demo_scrape)
        for sample in family.samples
    }
    queries = [*dashboard_queries(), *annotation_queries(), *alert_queries()]
    assert len(dashboard_queries()) >= 60 and len(alert_queries()) >= 13
    unknown = []
    for where, expr in queries:
        names = metric_names(substitute(expr))
        assert names, f"{where}: no metric found in {expr!r}"
        unknown += [f"{where}: {name}" for name in sorted(names - exported)]
    for where, name in variable_queries():
        if name not in exported:
            unknown.append(f"{where}: {name}")
    assert not unknown, "metrics the daemon does not export:\n" + "\n".join(unknown)


#: exported families with no panel, and why (each is read elsewhere)
NO_PANEL = {
    "reoptd_metric_floor": "drawn through reoptd_metric_threshold, which covers every trigger kind",
    "reoptd_multivariate_drift_auc": "only with monitor.multivariate, which the demo does not set",
    "reoptd_multivariate_drifted": "only with monitor.multivariate, which the demo does not set",
    "reoptd_unmatched_labels": "only with a separate label feed (data.labels)",
    "reoptd_duplicate_labels": "only with a separate label feed (data.labels)",
    "reoptd_backfilled_windows": "the backfilled metric itself is drawn (Labels and estimation)",
    "reoptd_feature_drift_score": "drawn as reoptd_feature_drift_ratio: score over threshold",
    "reoptd_feature_drift_threshold": "drawn as reoptd_feature_drift_ratio: score over threshold",
    "reoptd_mlflow_sync_errors": "only with REOPTD_MLFLOW_URI, which the demo does not set",
}


def test_every_exported_family_has_a_panel_or_a_reason(demo_scrape: str) -> None:
    families = {
        family.name
        for family in text_string_to_metric_families(demo_scrape)
        if family.name.startswith("reoptd_") and not family.name.endswith("_created")
    }
    drawn: set[str] = set()
    for _where, expr in dashboard_queries():
        drawn |= {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in metric_names(expr)}
    missing = sorted(families - drawn - set(NO_PANEL))
    assert not missing, f"exported families no dashboard panel shows: {missing}"
    assert not set(NO_PANEL) & drawn, "drawn now: remove from NO_PANEL"


def test_every_panel_has_a_unit_and_says_what_to_do_when_it_is_red() -> None:
    problems = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in _panels(board["panels"]):
            if panel["type"] == "row":
                continue
            where = f"{path.name}: {panel['title']!r}"
            if not panel["fieldConfig"]["defaults"].get("unit"):
                problems.append(f"{where}: no unit")
            description = panel.get("description", "")
            if "Not coloured" in description:
                continue
            if not re.search(r"\b(red|orange)\b", description):
                problems.append(f"{where}: the description does not say what to do when red")
            elif not re.search(r'"(red|orange)"', json.dumps(panel)):
                problems.append(f"{where}: says what to do when red but cannot turn red")
    assert not problems, "\n".join(problems)


def test_dashboards_are_distinct_and_provisioned_from_their_directory() -> None:
    boards = {path.name: json.loads(path.read_text()) for path in DASHBOARDS}
    assert set(boards) == {"reoptd-overview.json", "reoptd-model.json"}
    assert {b["uid"] for b in boards.values()} == {"reoptd-overview", "reoptd-model"}
    assert {b["title"] for b in boards.values()} == {"reoptd overview", "reoptd model"}
    for name, board in boards.items():
        ids = [p["id"] for p in _panels(board["panels"])]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
    model = boards["reoptd-model.json"]
    (variable,) = [v for v in model["templating"]["list"] if v["name"] == "model"]
    assert variable["query"]["query"] == "label_values(reoptd_champion_info, model)"
    names = {a["name"] for a in model["annotations"]["list"]}
    assert {"Promotions", "Rollbacks"} <= names
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/reoptd.yml").read_text())
    assert provider["providers"][0]["type"] == "file"


# -- promtool ---------------------------------------------------------------------------------


def _promtool() -> str:
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).exists():
        pytest.fail(MISSING.format("promtool"))
    return promtool


@pytest.mark.external  # promtool comes from the Debian package the test set-up installs
@pytest.mark.parametrize(
    "args",
    [
        ["check", "rules", "alerts.yml"],
        ["check", "config", "prometheus.yml"],
        ["test", "rules", "alerts_test.yml"],
    ],
    ids=["check-rules", "check-config", "test-rules"],
)
def test_promtool_accepts_the_prometheus_files(args: list[str]) -> None:
    out = subprocess.run(
        [_promtool(), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )
    output = out.stdout + out.stderr
    assert out.returncode == 0, output
    assert "SUCCESS" in output and "FAILED" not in output and "WARNING" not in output, output


@pytest.mark.external
def test_promtool_finds_no_problem_in_the_daemons_metrics(demo_scrape: str) -> None:
    out = subprocess.run(
        [_promtool(), "check", "metrics"],
        input=demo_scrape,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and not (out.stdout + out.stderr).strip(), out.stdout + out.stderr


# -- Alertmanager -------------------------------------------------------------------------------

ALERTMANAGER = PROMETHEUS_DIR / "alertmanager.yml"


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    amtool = shutil.which("amtool") or "/usr/bin/amtool"
    if not Path(amtool).exists():
        pytest.fail(
            "amtool is not installed: run `bash tests/install-servers.sh` as root (make test"
            " does), which installs the Debian package `prometheus-alertmanager`"
        )
    return subprocess.run([amtool, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.external
def test_amtool_accepts_the_alertmanager_example() -> None:
    done = _amtool("check-config", str(ALERTMANAGER))
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def _expected_receiver(rule: dict[str, Any]) -> str:
    if rule["labels"]["severity"] == "critical":
        return "reoptd-oncall"
    if rule["alert"] in {"ReoptdDataQualityIssues", "ReoptdSchemaChanged", "ReoptdDataErrors"}:
        return "data-owners"
    return "reoptd-owners"


@pytest.mark.external
def test_every_alert_routes_to_the_receiver_the_example_promises() -> None:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    assert {"ReoptdChampionUnloadable", "ReoptdDataQualityIssues", "ReoptdCycleErrors"} <= {
        r["alert"] for r in rules
    }
    config = yaml.safe_load(ALERTMANAGER.read_text())
    named = " ".join(json.dumps(r) for r in config["inhibit_rules"] + config["route"]["routes"])
    known = {r["alert"] for r in rules}
    for name in re.findall(r"Reoptd[A-Za-z]+", named):  # no route or inhibition for a typo
        assert name in known, f"alertmanager.yml names {name}, which alerts.yml does not define"
    wrong = []
    for rule in rules:
        labels = [f"alertname={rule['alert']}", f"severity={rule['labels']['severity']}"]
        done = _amtool("config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
        got, want = done.stdout.strip(), _expected_receiver(rule)
        if got != want:
            wrong.append(f"{rule['alert']}: routed to {got!r}, expected {want!r} {done.stderr}")
    assert not wrong, "\n".join(wrong)


# -- a real Prometheus scraping the daemon ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    def __init__(self, url: str, target_port: int) -> None:
        self.url = url
        self.target_port = target_port

    def api(self, path: str, **params: str) -> dict[str, Any]:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as exc:  # 400/422: a bad query, with the reason as JSON
            return json.loads(exc.read())

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    """A real Prometheus on loopback that scrapes 127.0.0.1:<target_port> as job `reoptd` every
    second and evaluates deploy/prometheus/alerts.yml."""
    if not PROMETHEUS.exists():
        pytest.fail(MISSING.format(PROMETHEUS))
    port, target = _free_port(), _free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(  # JSON is YAML
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(ALERTS)],
                "scrape_configs": [
                    {
                        "job_name": "reoptd",
                        "scrape_interval": "1s",
                        "scrape_timeout": "1s",
                        "static_configs": [{"targets": [f"127.0.0.1:{target}"]}],
                    }
                ],
            }
        )
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus not ready: {(tmp_path / 'prometheus.log').read_text()}")
            time.sleep(0.2)
        yield Prometheus(url, target)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.external
def test_prometheus_evaluates_every_dashboard_query_and_alert_on_the_demo(
    prometheus: Prometheus, demo_policy: Policy, sqlite_registry: Store
) -> None:
    started = time.time()
    service = _service(demo_policy, sqlite_registry, prometheus.target_port)
    service.start()
    try:
        # Until Prometheus has seen the drift detected and the challenger promoted (v1 -> v2),
        # and holds a few seconds of samples.
        ready = (
            f'reoptd_promotions_total{{model="{MODEL}"}} >= 2'
            " and on() increase(reoptd_reoptimizations_total"
            f'{{model="{MODEL}", trigger="drift_share", outcome="promoted"}}[5m]) > 0'
            ' and on() count_over_time(up{job="reoptd"}[1m]) >= 5'
            ' and on() up{job="reoptd"} == 1'
        )
        deadline = time.monotonic() + 90
        while not prometheus.query(ready)["data"]["result"]:
            assert time.monotonic() < deadline, (
                "Prometheus did not see the drift promotion of the demo within 90 s: "
                + json.dumps(prometheus.query("{__name__=~'up|reoptd_promotions_total'}"))
            )
            time.sleep(0.5)

        problems = []
        for where, expr in dashboard_queries():
            answer = prometheus.query(substitute(expr))
            if answer["status"] != "success":
                problems.append(f"{where}: {answer.get('error')} in {expr!r}")
            elif not answer["data"]["result"]:
                problems.append(f"{where}: no series for {substitute(expr)!r}")
        for where, expr in alert_queries():
            answer = prometheus.query(expr)
            if answer["status"] != "success":
                problems.append(f"{where}: {answer.get('error')} in {expr!r}")
        for where, expr in annotation_queries():
            answer = prometheus.api(
                "query_range",
                query=substitute(expr),
                start=f"{started:.3f}",
                end=f"{time.time():.3f}",
                step="1s",
            )
            if answer["status"] != "success":
                problems.append(f"{where}: {answer.get('error')} in {expr!r}")
            elif "Promotions" in where and not answer["data"]["result"]:
                problems.append(f"{where}: no promotion found in {expr!r}")
        for where, metric in variable_queries():
            values = prometheus.api("label/model/values", **{"match[]": metric})["data"]
            if MODEL not in values:
                problems.append(f"{where}: {MODEL} not among {values}")
        rules = prometheus.api("rules")["data"]["groups"]
        evaluated = [r for g in rules for r in g["rules"]]
        assert len(evaluated) == len(alert_queries())
        problems += [
            f"alerts.yml: {r['name']} evaluates with {r['health']}: {r.get('lastError')}"
            for r in evaluated
            if r["health"] != "ok"
        ]
        assert not problems, "\n".join(problems)
    finally:
        service.stop()
