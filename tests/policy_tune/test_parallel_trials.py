"""`reoptd policy tune` with trials in parallel: two worker processes of this machine, and tasks
on a real local Ray cluster. The study is in a real SQLite database that only the tuner's
process writes to; a backtest is a pure function of its candidate, so a trial scores the same
wherever it runs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import sys
import threading
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import optuna
import pytest

from reoptd.backtest import Span, parse_span
from reoptd.policy_tune import Scores, TuneError, TuneResult, tune_policy
from reoptd.policy_tune._pool import ProcessPool, open_pool
from reoptd.policy_tune._trial import Work

from .test_policy_tune import OPTIONS, POLICY, _stream

STUDY = "policy-tune-tiny"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("parallel")
    base = folder / "base.yaml"
    base.write_text(POLICY)
    data = folder / "history.parquet"
    _stream().to_parquet(data, index=False)
    return base, data


def _tune(files: tuple[Path, Path], storage: str, trials: int, **how: object) -> TuneResult:
    base, data = files
    return tune_policy(base, data, storage=storage, trials=trials, **OPTIONS, **how)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sequential_storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('sequential') / 'reoptd.db'}"


@pytest.fixture(scope="module")
def sequential(files: tuple[Path, Path], sequential_storage: str) -> TuneResult:
    return _tune(files, sequential_storage, 2, executor="local", jobs=1)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'reoptd.db'}"


@pytest.fixture(scope="module")
def parallel(files: tuple[Path, Path], storage: str) -> TuneResult:
    return _tune(files, storage, 4, executor="local", jobs=2)


def _measured(scores: Scores | None) -> tuple[object, ...]:
    """What a backtest computes (its optimize seconds are a clock reading)."""
    assert scores is not None
    return scores.value, scores.retrains, scores.promotions


def test_two_worker_processes_run_the_trials_and_score_a_candidate_as_the_sequential_search(
    parallel: TuneResult, sequential: TuneResult, storage: str, sequential_storage: str
) -> None:
    assert parallel.trials + parallel.failed == 4 and parallel.trials >= 1
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert len(study.trials) == 4
    assert all(t.state.is_finished() for t in study.trials)
    # the seeds still come first, the base policy as trial 0
    assert [t.user_attrs["seed"] for t in study.trials[:3]] == [
        "base",
        "short window",
        "no cooldown",
    ]
    # the base trial's scores, backtested in a worker, are the sequential search's
    assert _measured(parallel.base.search) == _measured(sequential.base.search)
    trial = study.trials[0].user_attrs
    alone = optuna.load_study(study_name=STUDY, storage=sequential_storage).trials[0].user_attrs
    assert trial["policy"] == alone["policy"]
    assert _measured(Scores(**trial["search"])) == _measured(Scores(**alone["search"]))
    # so are its held-out scores and the baselines, measured on the same pool
    assert _measured(parallel.base.heldout) == _measured(sequential.base.heldout)
    assert _measured(parallel.periodic) == _measured(sequential.periodic)
    assert _measured(parallel.static) == _measured(sequential.static)
    for item in parallel.front:
        assert item.heldout is not None and item.heldout.value is not None


def test_a_parallel_study_resumes_with_more_trials(
    parallel: TuneResult, files: tuple[Path, Path], storage: str
) -> None:
    before = optuna.load_study(study_name=STUDY, storage=storage).trials
    more = _tune(files, storage, 6, executor="local", jobs=2)
    after = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert len(after) == 6 and more.trials + more.failed == 6
    assert [(t.number, t.state, t.values) for t in after[:4]] == [
        (t.number, t.state, t.values) for t in before
    ]
    assert more.base.heldout == parallel.base.heldout  # read back from the study


def test_a_candidate_failing_in_a_worker_is_recorded_failed_with_its_reason(
    tmp_path: Path,
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(POLICY.replace("min_rows: 100\n", "min_rows: 100000\n"))
    data = tmp_path / "history.parquet"
    _stream().to_parquet(data, index=False)
    storage = f"sqlite:///{tmp_path / 'reoptd.db'}"
    with pytest.raises(TuneError, match=r"no trial completed; the last failed with: .*warm-up"):
        _tune((base, data), storage, 2, executor="local", jobs=2)
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    for trial in trials:
        assert "warm-up model could not be trained" in trial.user_attrs["error"]
        assert "policy" in trial.user_attrs  # the candidate is kept, to see what failed


def test_a_worker_that_dies_fails_its_backtest_and_the_pool_goes_on(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    _, data = files
    blocked = tmp_path / "blocked.parquet"
    os.mkfifo(blocked)  # reading it waits for a writer that never comes
    work = Work(
        POLICY,
        "trial 7",
        blocked,
        (Span(rows=320),),
        parse_span("100", "--step"),
        Span(rows=0),
        None,
    )
    pool = ProcessPool(1, tmp_path / "cache")
    try:
        pool.submit(7, work)
        (worker,) = [
            p for p in multiprocessing.active_children() if p.name.startswith("reoptd-policy-tune")
        ]
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        (died,) = pool.wait()
        assert died.key == 7 and died.outcome is None
        assert died.error == (
            "trial 7: its worker process was killed by SIGKILL (out of memory?) before the"
            " backtest finished"
        )
        pool.submit(8, work.on(data))  # a new worker takes the next backtest
        (done,) = pool.wait()
        assert done.key == 8 and done.error is None and done.outcome is not None
        assert done.outcome["served"].value is not None
    finally:
        pool.close()
    assert not [
        p for p in multiprocessing.active_children() if p.name.startswith("reoptd-policy-tune")
    ]


def test_ctrl_c_leaves_no_running_trial_and_a_rerun_goes_on(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    file = tmp_path / "reoptd.db"
    storage = f"sqlite:///{file}"
    finished = threading.Event()

    def interrupt_while_a_trial_runs() -> None:
        # read-only SQL: Optuna's storage would race the tuner to create its tables
        while not finished.wait(0.05):
            try:
                with closing(sqlite3.connect(f"file:{file}?mode=ro", uri=True)) as db:
                    running = db.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'")
                    if running.fetchone()[0] == 0:
                        continue
            except sqlite3.Error:  # no database or no table yet, or the tuner is writing
                continue
            signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            return

    watcher = threading.Thread(target=interrupt_while_a_trial_runs)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            _tune(files, storage, 6, executor="local", jobs=2)
    finally:
        finished.set()
        watcher.join()
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert trials and optuna.trial.TrialState.RUNNING not in [t.state for t in trials]
    stopped = [t for t in trials if "interrupted" in t.user_attrs.get("error", "")]
    assert stopped and all(t.state == optuna.trial.TrialState.FAIL for t in stopped)
    assert not [
        p for p in multiprocessing.active_children() if p.name.startswith("reoptd-policy-tune")
    ]
    again = _tune(files, storage, 6, executor="local", jobs=2)
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    # the interrupted trials count as spent; seeds left waiting ran first
    assert len(trials) == 6 and again.trials >= 1
    assert all(t.state.is_finished() for t in trials)
    assert [t.user_attrs["seed"] for t in trials[:4]] == [
        "base",
        "short window",
        "no cooldown",
        "first check",
    ]


def test_the_budget_stops_asking_for_trials_and_lets_the_running_ones_finish(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'reoptd.db'}"
    # both workers get a trial at once; none is asked once the budget is spent
    result = _tune(files, storage, 6, executor="local", jobs=2, budget=timedelta(seconds=0.3))
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    ran = [t for t in trials if t.state.is_finished()]
    assert 1 <= len(ran) <= 2 and result.trials + result.failed == len(ran)
    # the other seeds wait for a resumed search; none is left running
    assert {t.state for t in trials if t not in ran} <= {optuna.trial.TrialState.WAITING}


def test_the_executor_setting_and_jobs_choose_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REOPTD_EXECUTOR", "local")
    monkeypatch.setenv("REOPTD_SLOTS", "3")
    pool = open_pool(None, None, tmp_path)
    assert pool.slots == 3 and "worker processes" in pool.describe()
    assert open_pool(None, 1, tmp_path).describe() == "one at a time in this process"
    assert open_pool("inline", None, tmp_path).slots == 1
    with pytest.raises(TuneError, match="--jobs 2: REOPTD_EXECUTOR=inline runs trials one at a"):
        open_pool("inline", 2, tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed
    with pytest.raises(
        TuneError, match=r"REOPTD_EXECUTOR=ray needs Ray: pip install 'reoptd\[ray\]'"
    ):
        open_pool("ray", None, tmp_path)


@pytest.mark.slow
def test_on_ray_each_trials_backtest_is_a_task_and_scores_as_the_sequential_search(
    ray_cluster: str, files: tuple[Path, Path], sequential: TuneResult, tmp_path: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'reoptd.db'}"
    result = _tune(files, storage, 3, executor="ray")  # as many at once as the 2 CPUs hold
    assert result.trials + result.failed == 3 and result.trials >= 1
    trials = optuna.load_study(study_name=STUDY, storage=storage).trials
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials)
    assert _measured(result.base.search) == _measured(sequential.base.search)
    assert _measured(result.base.heldout) == _measured(sequential.base.heldout)
