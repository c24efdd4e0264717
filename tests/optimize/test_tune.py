"""The tune step: Optuna studies in the daemon's database, warm starts, budgets, resumption."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import optuna
import pandas as pd
import pytest

from reoptd.cycle import ModelLoop
from reoptd.data import demo
from reoptd.metrics import Metrics
from reoptd.optimize import _tune
from reoptd.policy import Policy, parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store import RunRecord, Store

AFTER_DRIFT = demo.START + timedelta(hours=6)


def _policy(tune: str) -> Policy:
    text = DEMO_POLICY.read_text().replace(
        "pipeline: [retrain, validate]", f"pipeline: [retrain, tune, validate]\ntune: {tune}"
    )
    return parse_policy(text, "tune.yaml")


def _trials(registry: Store, study: str) -> list[optuna.trial.FrozenTrial]:
    loaded = optuna.load_study(study_name=study, storage=registry.url)
    return [t for t in loaded.get_trials() if _tune.is_own(t)]


def test_a_study_lives_in_the_database_and_warm_starts_from_the_champion(
    sqlite_registry: Store, metrics: Metrics
) -> None:
    policy = _policy("{trials: 8, sampler: tpe, seed_history: true}")
    loop = ModelLoop(policy, sqlite_registry, metrics)
    first = loop.optimize(AFTER_DRIFT, trigger="bootstrap")
    assert first.outcome == "promoted" and first.steps["tune"]["trials"] == 8
    champion = sqlite_registry.champion(policy.model)

    second = loop.optimize(AFTER_DRIFT + timedelta(hours=2), trigger="manual")
    tune = second.steps["tune"]
    assert tune["trials"] == 8 and tune["warm_trials"] >= 2 and not tune["resumed"]
    trials = _trials(sqlite_registry, tune["study"])
    space = set(trials[0].params)
    assert trials[0].params == {k: champion.params[k] for k in space}  # the champion comes first
    assert len({tuple(sorted(t.params.items())) for t in trials}) >= 6
    # earlier trials seed the sampler: they are in the study, marked as copied
    study = optuna.load_study(study_name=tune["study"], storage=sqlite_registry.url)
    copied = [t for t in study.get_trials() if t.user_attrs.get("reoptd_from")]
    earlier = _trials(sqlite_registry, first.steps["tune"]["study"])
    assert len(copied) == sum(t.state == optuna.trial.TrialState.COMPLETE for t in earlier)
    assert copied


def test_an_interrupted_study_is_resumed_not_restarted(
    sqlite_registry: Store, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = _policy("{trials: 10, sampler: random, pruner: none}")
    loop = ModelLoop(policy, sqlite_registry, metrics)
    calls = {"n": 0}
    original = _tune._Objective.__call__

    def dies_at_the_fifth(self, trial):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt("the daemon is killed")
        return original(self, trial)

    monkeypatch.setattr(_tune._Objective, "__call__", dies_at_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        loop.optimize(AFTER_DRIFT, trigger="bootstrap")
    monkeypatch.undo()
    (study,) = [
        s
        for s in optuna.get_all_study_summaries(sqlite_registry.url)
        if s.user_attrs.get("model") == policy.model
    ]
    assert study.user_attrs["finished"] is False
    complete = optuna.trial.TrialState.COMPLETE
    before = [t.params for t in _trials(sqlite_registry, study.study_name) if t.state == complete]
    assert len(before) == 4

    again = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    tune = again.steps["tune"]
    assert tune["resumed"] and tune["study"] == study.study_name
    after = [t for t in _trials(sqlite_registry, study.study_name) if t.state == complete]
    # 4 kept + 5 more: the budget, not 4 + 10 (the killed fifth trial was started: it counts)
    assert len(after) == 9
    assert len(_trials(sqlite_registry, study.study_name)) == 10
    assert [t.params for t in after[:4]] == before


def test_budgets_hold(sqlite_registry: Store, metrics: Metrics) -> None:
    policy = _policy("{trials: 200, timeout: 2s, sampler: random, pruner: none}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    tune = run.steps["tune"]
    assert run.outcome == "promoted"
    assert 1 <= tune["trials"] < 200  # the timeout stopped it, and the best was kept
    assert tune["best_params"]


def test_the_holdout_never_reaches_the_objective(
    sqlite_registry: Store, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[pd.Timestamp] = []
    original = _tune.evaluate

    def spy(model, frame, target, names, costs=None):
        seen.append(frame["ts"].max())
        return original(model, frame, target, names, costs)

    monkeypatch.setattr(_tune, "evaluate", spy)
    policy = _policy("{trials: 5, sampler: tpe}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    version = sqlite_registry.version(policy.model, run.challenger_version)
    holdout_start = pd.Timestamp(version.metrics["holdout_start"])
    assert seen and max(seen) < holdout_start


@pytest.mark.parametrize("sampler", ["grid", "random", "tpe", "gp", "cmaes", "nsga2"])
def test_every_sampler_runs(sqlite_registry: Store, metrics: Metrics, sampler: str) -> None:
    space = (
        "space: {learning_rate: {float: [0.05, 0.2], step: 0.05},"
        " max_leaf_nodes: {int: [8, 32], step: 8}}"
    )
    policy = _policy(f"{{trials: 6, sampler: {sampler}, {space}}}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    tune = run.steps["tune"]
    assert run.outcome == "promoted", run.reason
    assert tune["trials"] == 6 and set(tune["best_params"]) == {"learning_rate", "max_leaf_nodes"}
    if sampler == "nsga2":
        front = tune["pareto_front"]
        assert front and all("f1" in p and "latency" in p for p in front)


def test_the_median_pruner_stops_weak_boosting_trials(
    sqlite_registry: Store, metrics: Metrics
) -> None:
    policy = _policy("{trials: 25, sampler: random, pruner: median}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    assert run.steps["tune"]["pruned"] >= 1


def test_grid_needs_finite_values(sqlite_registry: Store, metrics: Metrics) -> None:
    policy = _policy("{trials: 4, sampler: grid, space: {learning_rate: {float: [0.01, 0.3]}}}")
    run = ModelLoop(policy, sqlite_registry, metrics).optimize(AFTER_DRIFT, trigger="bootstrap")
    assert run.outcome == "failed" and "grid sampler needs finite values" in run.reason


def test_cli_optimize_on_a_file_reports_the_study(tmp_path: Path) -> None:
    reoptd = str(Path(sys.executable).parent / "reoptd")
    env = {**os.environ, "REOPTD_HOME": str(tmp_path / "home")}
    data = tmp_path / "demo.parquet"
    subprocess.run([reoptd, "demo", "export", str(data)], env=env, check=True, capture_output=True)
    out = tmp_path / "report.json"
    done = subprocess.run(
        [
            reoptd,
            "optimize",
            "--policy",
            str(DEMO_POLICY),
            "--data",
            str(data),
            "--steps",
            "retrain,tune",
            "--report",
            str(out),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())
    assert report["trials"] == 30 and report["best_params"] and report["best_value"] > 0
    assert report["seconds"] > 0 and set(report["steps"]) == {"retrain", "tune", "validate"}
    shown = subprocess.run(
        [reoptd, "models", "show", "demo_churn"], env=env, capture_output=True, text=True
    )
    assert "tune: study" in shown.stdout and "30 trials" in shown.stdout


@pytest.mark.external
def test_first_tune_runs_at_once_on_a_fresh_postgresql_database_both_succeed(
    postgres_url: str, tmp_path: Path, metrics: Metrics
) -> None:
    """Optuna creates its tables on first use, unlocked: two runs starting together on a new
    database both tried, and one died of ``UniqueViolation``. The store makes them first, one
    process at a time. Here four replicas (a store each, as four daemons have) start a first
    tune run together."""
    from reoptd.store.sql import SqlStore

    replicas = [SqlStore(postgres_url, tmp_path / "artifacts") for _ in range(4)]
    text = DEMO_POLICY.read_text().replace(
        "pipeline: [retrain, validate]",
        "pipeline: [retrain, tune, validate]\n"
        "tune: {trials: 2, sampler: random, pruner: none, warm_start: false}",
    )
    loops = [
        ModelLoop(
            parse_policy(text.replace("model: demo_churn", f"model: m{i}"), f"m{i}.yaml"),
            store,
            metrics,
        )
        for i, store in enumerate(replicas)
    ]
    barrier = threading.Barrier(len(loops))

    def first_run(loop: ModelLoop) -> RunRecord:
        barrier.wait()
        return loop.optimize(AFTER_DRIFT, trigger="bootstrap")

    try:
        with ThreadPoolExecutor(len(loops)) as pool:
            runs = list(pool.map(first_run, loops))
        for run in runs:
            assert run.outcome == "promoted", run.reason
            assert run.steps["tune"]["trials"] == 2
        studies = optuna.get_all_study_summaries(postgres_url, include_best_trial=False)
        assert sorted(s.user_attrs["model"] for s in studies) == ["m0", "m1", "m2", "m3"]
    finally:
        for store in replicas:
            store.close()


@pytest.mark.external
def test_trial_writes_on_postgresql_commit_without_waiting_for_the_disk_and_the_store_still_does(
    postgres_url: str, tmp_path: Path
) -> None:
    """A trial commits about ten small transactions: the studies' own connections set
    ``synchronous_commit=off`` (keeping a user's ``options`` from the URL); the daemon's tables,
    on the store's engine, keep synchronous commits."""
    from sqlalchemy import text

    from reoptd.optimize._own_trials import OwnTrials
    from reoptd.optimize._studies import close_storage, open_storage
    from reoptd.store.sql import SqlStore

    store = SqlStore(postgres_url, tmp_path / "artifacts")
    url = store.optuna_storage
    assert url is not None
    own = f"{url}?options=-c%20statement_timeout%3D5000"
    storages = [open_storage(url), open_storage(own)]
    try:
        settings = []
        for storage in storages:
            assert isinstance(storage, OwnTrials)
            with storage.rdb.engine.connect() as conn:
                settings.append(
                    (
                        conn.execute(text("SHOW synchronous_commit")).scalar(),
                        conn.execute(text("SHOW statement_timeout")).scalar(),
                    )
                )
        assert settings == [("off", "0"), ("off", "5s")]
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        study = optuna.create_study(study_name="s", storage=storages[0])
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
        again = optuna.load_study(study_name="s", storage=url)  # a plain storage reads them
        assert [t.state for t in again.get_trials()] == [optuna.trial.TrialState.COMPLETE] * 3
    finally:
        for storage in storages:
            close_storage(storage)
        store.close()
