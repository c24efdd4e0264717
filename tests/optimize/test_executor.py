"""Where re-optimization steps run: the process executor stops a runaway step at its budget or
when the daemon stops; a normal run through it registers and promotes like an inline one.

Real child processes, no mocks. The runaway step is an MLP with ``max_iter: 1000000000000``,
``tol: 0`` and no early stop: in a thread it would never return."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta

import optuna
import pytest

from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.errors import OptimizeError
from reoptd.metrics import Metrics
from reoptd.optimize import (
    InlineExecutor,
    LocalProcessExecutor,
    open_executor,
)
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY, Settings
from reoptd.store import RunRecord, Store

RUNAWAY = {
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier": (
        "estimator: sklearn.neural_network.MLPClassifier"
    ),
    "params: {max_iter: 150, learning_rate: 0.05, max_depth: 3, random_state: 0}": (
        "params: {max_iter: 1000000000000, tol: 0, n_iter_no_change: 1000000000000}"
    ),
}


def _policy(budget: str | None = None, runaway: bool = False) -> Policy:
    text = DEMO_POLICY.read_text()
    if budget is not None:
        text = text.replace(
            "pipeline: [retrain, validate]",
            f"pipeline: [{{retrain: {{budget: {budget}}}}}, validate]",
        )
    for old, new in RUNAWAY.items() if runaway else ():
        assert old in text, old
        text = text.replace(old, new)
    return parse_policy(text, "test.yaml")


@pytest.fixture
def executor() -> Iterator[LocalProcessExecutor]:
    executor = LocalProcessExecutor()
    yield executor
    executor.shutdown()


@pytest.mark.slow
def test_a_runaway_step_is_stopped_at_its_budget_and_the_champion_stays(
    sqlite_registry: Store,
    clock: SimulatedClock,
    metrics: Metrics,
    executor: LocalProcessExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = ModelLoop(_policy(), sqlite_registry, metrics, executor=executor)
    loop.start()
    clock.set(demo.DRIFT_AT)
    with caplog.at_level(logging.INFO, logger="reoptd"):
        first = loop.optimize(clock.now(), trigger="bootstrap")
    # the child's log lines reach the daemon's log
    assert any(
        r.processName.startswith("reoptd-run-") and "step retrain done" in r.getMessage()
        for r in caplog.records
    ), caplog.text
    # a normal run through the child process registers and promotes, as an inline one does
    assert first.outcome == "promoted", first.reason
    assert first.steps["retrain"]["rows"] > 0 and "challenger" in first.steps["validate"]
    assert sqlite_registry.model(loop.name).champion_version == 1
    assert loop.champion().version == 1  # the parent loads what the child trained

    loop.update_policy(_policy(budget="5s", runaway=True))
    run = loop.optimize(clock.now(), trigger="manual")
    assert run.outcome == "failed"
    assert "retrain exceeded its budget of 5s" in run.reason, run.reason
    assert sqlite_registry.model(loop.name).champion_version == 1
    assert [r.outcome for r in sqlite_registry.runs(loop.name)] == ["promoted", "failed"]


@pytest.mark.slow
def test_shutdown_stops_a_running_step_at_once(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics, executor: LocalProcessExecutor
) -> None:
    loop = ModelLoop(_policy(runaway=True), sqlite_registry, metrics, executor=executor)
    loop.start()
    clock.set(demo.DRIFT_AT)
    sqlite_registry.ensure_model(loop.policy, clock.now())
    started = threading.Event()
    runs: list = []

    def optimize() -> None:
        started.set()
        runs.append(loop.optimize(clock.now(), trigger="bootstrap"))

    worker = threading.Thread(target=optimize)
    worker.start()
    started.wait()
    while not sqlite_registry.runs(loop.name):  # the run is recorded, its process started
        worker.join(0.2)
    worker.join(3)  # the default budget (1h) is far off: the step is still running
    assert worker.is_alive()
    executor.shutdown()
    worker.join(60)  # a bound on a hang, not a timing: the shutdown does not wait on the step
    assert not worker.is_alive()
    (run,) = runs
    assert run.outcome == "failed" and "shutting down" in run.reason, run.reason
    assert [r.outcome for r in sqlite_registry.runs(loop.name)] == ["failed"]
    after = loop.optimize(clock.now(), trigger="manual")  # and no new run starts
    assert after.outcome == "failed" and "the daemon is stopping" in after.reason


def test_the_executor_is_a_setting_and_the_daemon_default_is_a_process(
    monkeypatch: pytest.MonkeyPatch, sqlite_registry: Store, metrics: Metrics
) -> None:
    monkeypatch.delenv("REOPTD_EXECUTOR")
    assert Settings().executor == "local"
    assert isinstance(ModelLoop(_policy(), sqlite_registry, metrics).executor, LocalProcessExecutor)
    monkeypatch.setenv("REOPTD_EXECUTOR", "inline")
    assert isinstance(ModelLoop(_policy(), sqlite_registry, metrics).executor, InlineExecutor)
    with pytest.raises(OptimizeError, match="unknown executor 'spark'"):
        open_executor("spark")
    monkeypatch.setenv("REOPTD_EXECUTOR", "process")  # the former name of `local`
    monkeypatch.setenv("REOPTD_SLOTS", "3")
    executor = ModelLoop(_policy(), sqlite_registry, metrics).executor
    assert isinstance(executor, LocalProcessExecutor) and executor.name == "local"
    assert executor.capacity == 3 and InlineExecutor().capacity == 1


def test_each_slot_gets_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REOPTD_THREADS", raising=False)
    monkeypatch.setattr("reoptd.threads.usable_cores", lambda: 8)
    assert LocalProcessExecutor(slots=4).threads == 2
    assert LocalProcessExecutor(slots=16).threads == 1
    monkeypatch.setenv("REOPTD_THREADS", "3")
    assert LocalProcessExecutor(slots=4).threads == 3


def test_a_step_without_a_budget_gets_the_default() -> None:
    policy = _policy()
    assert all(step.budget is None for step in policy.pipeline)
    assert {step.limit for step in policy.pipeline} == {timedelta(hours=1)}
    assert _policy(budget="5s").pipeline[0].limit.total_seconds() == 5


@pytest.mark.slow
def test_a_tune_step_in_the_child_keeps_its_study_in_the_daemons_database(
    sqlite_registry: Store, metrics: Metrics, executor: LocalProcessExecutor
) -> None:
    text = DEMO_POLICY.read_text().replace(
        "pipeline: [retrain, validate]",
        "pipeline: [retrain, tune, validate]\ntune: {trials: 4, sampler: tpe}",
    )
    policy = parse_policy(text, "tune.yaml")
    loop = ModelLoop(policy, sqlite_registry, metrics, executor=executor)
    run = loop.optimize(demo.START + timedelta(hours=6), trigger="bootstrap")
    assert run.outcome == "promoted", run.reason
    study = optuna.load_study(study_name=run.steps["tune"]["study"], storage=sqlite_registry.url)
    assert len(study.get_trials()) == run.steps["tune"]["trials"] == 4


@pytest.mark.slow
def test_a_killed_child_fails_its_run_with_the_cause(
    sqlite_registry: Store,
    clock: SimulatedClock,
    metrics: Metrics,
    executor: LocalProcessExecutor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What the kernel's OOM killer does to a run: the run fails, saying so; the loop goes on."""
    loop = ModelLoop(_policy(runaway=True), sqlite_registry, metrics, executor=executor)
    clock.set(demo.DRIFT_AT)
    runs: list = []
    caplog.set_level(logging.DEBUG, logger="reoptd.optimize")
    worker = threading.Thread(target=lambda: runs.append(loop.optimize(clock.now())))
    worker.start()
    pid = None
    while pid is None and worker.is_alive():
        found = [re.search(r"run process (\d+) started", r.getMessage()) for r in caplog.records]
        pid = next((int(m.group(1)) for m in found if m), None)
        worker.join(0.2)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    worker.join(60)  # a bound on a hang
    (run,) = runs
    assert run.outcome == "failed" and "killed by SIGKILL (out of memory?)" in run.reason


@pytest.mark.slow
def test_runs_beyond_the_slots_wait_for_a_free_one_and_then_execute(
    sqlite_registry: Store, clock: SimulatedClock, metrics: Metrics
) -> None:
    """One slot, two runs claimed (``claims`` is twice the slots, so a run's rows are read and
    its result recorded in the daemon while the slot executes another): the second waits in
    ``submit`` until the runaway first is stopped at its budget, then executes and promotes."""
    executor = LocalProcessExecutor(slots=1)
    assert executor.capacity == 1 and executor.claims == 2
    try:
        runaway = _policy(budget="3s", runaway=True)
        stuck = ModelLoop(runaway, sqlite_registry, metrics, executor=executor)
        second = _policy().model_copy(update={"model": "demo_other"})
        other = ModelLoop(second, sqlite_registry, metrics, executor=executor)
        clock.set(demo.DRIFT_AT)
        for loop in (stuck, other):
            loop.start()
            sqlite_registry.ensure_model(loop.policy, clock.now())
        runs: dict[str, RunRecord] = {}
        first = threading.Thread(
            target=lambda: runs.__setitem__("stuck", stuck.optimize(clock.now(), "bootstrap"))
        )
        first.start()
        while not sqlite_registry.runs(stuck.name):  # the first run is recorded and holds the slot
            first.join(0.2)
        second = threading.Thread(  # waits in submit for the slot, then runs
            target=lambda: runs.__setitem__("other", other.optimize(clock.now(), "manual"))
        )
        second.start()
        seen: set[str] = set()
        most = 0
        while first.is_alive() or second.is_alive():  # the run processes alive at each moment
            alive = {p.name for p in multiprocessing.active_children()}
            alive = {name for name in alive if name.startswith("reoptd-run-")}
            seen |= alive
            most = max(most, len(alive))
            second.join(0.05)
        assert most == 1 and seen == {"reoptd-run-demo_churn", "reoptd-run-demo_other"}
    finally:
        executor.shutdown()
    stopped, done = runs["stuck"], runs["other"]
    assert stopped.outcome == "failed" and "exceeded its budget of 3s" in stopped.reason
    assert done.outcome == "promoted", done.reason
