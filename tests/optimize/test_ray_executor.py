"""The ``ray`` executor against a real local Ray cluster (2 CPUs, started once for the module,
shut down at the end): a run registers and promotes as on the other executors, a tune step's
trials run as parallel Ray tasks against the study in PostgreSQL, and a step over its budget or
a daemon shutdown kills the run's task. Ray's start-up takes 10-30 s: the tests share it."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import optuna
import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import OptimizeError
from reoptd.metrics import Metrics
from reoptd.optimize import RayExecutor, open_executor
from reoptd.optimize._ray import _Quota
from reoptd.policy import load_policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import Store
from reoptd.store.sql import SqlStore


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RUNAWAY = {
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier": (
        "estimator: sklearn.neural_network.MLPClassifier"
    ),
    "params: {max_iter: 150, learning_rate: 0.05, max_depth: 3, random_state: 0}": (
        "params: {max_iter: 1000000000000, tol: 0, n_iter_no_change: 1000000000000}"
    ),
    "pipeline: [retrain, validate]": "pipeline: [{retrain: {budget: 5s}}, validate]",
}


@pytest.fixture
def executor(ray_cluster: str) -> Iterator[RayExecutor]:
    executor = RayExecutor("auto")
    yield executor
    executor.close()


@pytest.fixture
def pg_registry(postgres_url: str, tmp_path: Path) -> Iterator[SqlStore]:
    registry = SqlStore(postgres_url, tmp_path / "artifacts")
    yield registry
    registry.close()


def test_the_executor_setting_names_ray_and_its_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REOPTD_RAY_ADDRESS", "ray://10.0.0.5:10001")
    executor = open_executor("ray")
    assert isinstance(executor, RayExecutor) and executor.address == "ray://10.0.0.5:10001"


def test_a_runs_ray_cpus_follow_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REOPTD_RAY_CPUS", "1.5")
    executor = open_executor("ray")
    assert isinstance(executor, RayExecutor) and executor.cpus == 1.5
    monkeypatch.setenv("REOPTD_RAY_CPUS", "0")
    with pytest.raises(ValueError, match="ray_cpus"):
        open_executor("ray")


def test_parallel_trials_are_handed_out_once_in_shrinking_chunks() -> None:
    quota = _Quota(40, jobs=2)
    chunks = [quota.chunk() for _ in range(3)]
    assert chunks == [10, 8, 6]  # a quarter of what is left each time: two shares, halved
    own = sum(quota.take(1) for _ in range(4))
    rest = []
    while quota.left:
        rest.append(quota.chunk())
    assert own == 4 and rest == [3, 3, 2, 1, 1, 1, 1]
    assert sum(chunks) + own + sum(rest) == 40  # every trial once
    assert quota.take(1) == 0 and quota.chunk() == 0
    assert quota.chunks == 10  # each chunk numbered: its sampler's seed offset


def test_without_ray_installed_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is missing
    with pytest.raises(OptimizeError, match=r"pip install 'reoptd\[ray\]'"):
        RayExecutor("auto").start()


@pytest.mark.external
@pytest.mark.slow
def test_a_run_on_ray_tunes_in_parallel_trial_tasks_and_promotes(
    pg_registry: SqlStore,
    executor: RayExecutor,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert executor.capacity == 2  # the cluster's CPUs, one per run
    text = DEMO_POLICY.read_text().replace(
        "pipeline: [retrain, validate]",
        "pipeline: [retrain, tune, validate]\n"
        "tune: {trials: 4, sampler: random, seed: 3, jobs: 2, warm_start: false}",
    )
    loop = ModelLoop(parse_policy(text, "tune.yaml"), pg_registry, metrics, executor=executor)
    with caplog.at_level(logging.INFO, logger="reoptd"):
        run = loop.optimize(demo.START + timedelta(hours=6), trigger="bootstrap")
    assert run.outcome == "promoted", run.reason
    assert pg_registry.model(loop.name).champion_version == 1
    assert loop.champion().version == 1  # the daemon loads what the Ray task trained
    # the task's log records come back to the daemon's log
    messages = [r.getMessage() for r in caplog.records]
    assert "demo_churn: tune: 4 trials in 2 parallel shares on Ray" in messages, messages
    assert any("step retrain done" in m for m in messages)
    # every trial of both shares is in the one study in PostgreSQL, none run twice
    study = optuna.load_study(study_name=run.steps["tune"]["study"], storage=pg_registry.url)
    trials = study.get_trials()
    assert len(trials) == run.steps["tune"]["trials"] == 4
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 4


@pytest.mark.external
@pytest.mark.slow
def test_a_run_asks_for_its_cpus_and_caps_its_thread_pools_to_them(
    ray_cluster: str, sqlite_registry: Store, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    executor = RayExecutor("auto", cpus=2)
    try:
        assert executor.capacity == 1  # the cluster's 2 CPUs hold one such run
        loop = ModelLoop(load_policy(DEMO_POLICY), sqlite_registry, metrics, executor=executor)
        with caplog.at_level(logging.DEBUG, logger="reoptd.optimize"):
            run = loop.optimize(demo.START + timedelta(hours=6), trigger="bootstrap")
    finally:
        executor.close()
    assert run.outcome == "promoted", run.reason
    (line,) = [r.getMessage() for r in caplog.records if "CPUs on Ray" in r.getMessage()]
    assert line.startswith("demo_churn: 2 CPUs on Ray, thread pools capped at 2: "), line
    pools = dict(p.rsplit(" ", 1) for p in line.split(": ", 2)[2].split(", "))
    assert pools and set(pools.values()) == {"2"}, line  # every BLAS/OpenMP pool at 2


@pytest.mark.external
@pytest.mark.slow
def test_a_step_over_its_budget_is_killed_on_the_cluster_and_the_champion_stays(
    sqlite_registry: Store, executor: RayExecutor, clock: SimulatedClock, metrics: Metrics
) -> None:
    text = DEMO_POLICY.read_text()
    for old, new in RUNAWAY.items():
        assert old in text, old
        text = text.replace(old, new)
    policy = parse_policy(text, "runaway.yaml")
    loop = ModelLoop(policy, sqlite_registry, metrics, executor=executor)
    clock.set(demo.DRIFT_AT)
    run = loop.optimize(clock.now(), trigger="bootstrap")
    assert run.outcome == "failed"
    assert "retrain exceeded its budget of 5s" in run.reason, run.reason
    assert sqlite_registry.model(loop.name).champion_version is None

    # a shutdown stops a running one at once, and no new run starts
    runs: list = []
    worker = threading.Thread(target=lambda: runs.append(loop.optimize(clock.now())))
    worker.start()
    while not sqlite_registry.runs(loop.name) or len(sqlite_registry.runs(loop.name)) < 2:
        worker.join(0.2)
    worker.join(2)
    assert worker.is_alive()
    executor.shutdown()
    worker.join(60)  # a bound on a hang, not a timing
    assert not worker.is_alive()
    (stopped,) = runs
    assert stopped.outcome == "failed" and "shutting down" in stopped.reason, stopped.reason
    after = loop.optimize(clock.now(), trigger="manual")
    assert after.outcome == "failed" and "the daemon is stopping" in after.reason


CLIENT = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.optimize import RayExecutor
from reoptd.policy import load_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import MemoryStore

executor = RayExecutor(sys.argv[1])
loop = ModelLoop(load_policy(DEMO_POLICY), MemoryStore(sys.argv[2]), Metrics(), executor=executor)
run = loop.optimize(demo.START, trigger="bootstrap")
print("outcome:", run.outcome, "streaming:", executor._streaming)
executor.close()
"""


@pytest.mark.external
@pytest.mark.slow
def test_through_ray_client_a_run_is_one_task_and_still_comes_back(
    ray_cluster: str, tmp_path: Path
) -> None:
    """``ray://``: Ray Client cannot stream a generator task; the run comes back whole. The
    client is another process (this one is already the cluster's driver), the client server
    one more, both started here and stopped by their pid."""
    port = _free_port()
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "ray.util.client.server", "--mode", "legacy"),
            *("--host", "127.0.0.1", "-p", str(port), "--address", ray_cluster),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, f"ray://127.0.0.1:{port}", str(tmp_path / "a")],
            capture_output=True,
            text=True,
            timeout=300,  # a bound on a hang
        )
    finally:
        server.terminate()
        server.wait(30)
    assert client.returncode == 0, client.stderr[-2000:]
    assert "outcome: promoted streaming: False" in client.stdout, client.stdout
    # the task's log records came back through the client too
    assert "reoptd.optimize demo_churn: step retrain done" in client.stderr, client.stderr[-2000:]
