"""The studies' storage reads a running trial of its own process once: Optuna's later reads of it
cost no SQL and return what the database holds."""

from __future__ import annotations

from typing import Any

import optuna
from sqlalchemy import event

from reoptd.optimize._own_trials import OwnTrials
from reoptd.optimize._studies import close_storage, open_storage


def _same(mine: optuna.trial.FrozenTrial, stored: optuna.trial.FrozenTrial) -> None:
    assert mine.number == stored.number
    assert mine.state == stored.state
    assert mine.values == stored.values
    assert mine.datetime_start == stored.datetime_start
    assert mine.datetime_complete == stored.datetime_complete
    assert mine.params == stored.params
    assert mine.distributions == stored.distributions
    assert mine.user_attrs == stored.user_attrs
    assert mine.system_attrs == stored.system_attrs
    assert mine.intermediate_values == stored.intermediate_values


def test_a_running_trial_is_read_once_and_its_copy_is_what_the_database_holds(
    db_url: str,
) -> None:
    storage = open_storage(db_url)
    assert isinstance(storage, OwnTrials)
    plain = optuna.storages.RDBStorage(db_url)  # another process's view: the database's rows
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    event.listen(storage.rdb.engine, "before_cursor_execute", count)
    seen: list[int] = []
    try:
        study = optuna.create_study(
            study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(seed=0)
        )
        study.enqueue_trial({"x": 0.25})  # a waiting trial the loop takes: read once as well

        def objective(trial: optuna.Trial) -> float:
            x = trial.suggest_float("x", 0.0, 1.0)
            kind = trial.suggest_categorical("kind", ["a", "b"])
            trial.set_user_attr("tag", (1, 2))  # stored as JSON: read back as a list
            trial.report(x / 2, step=1)
            before = len(statements)
            mine = storage.get_trial(trial._trial_id)
            assert len(statements) == before  # no SQL
            _same(mine, plain.get_trial(trial._trial_id))
            assert mine.user_attrs["tag"] == [1, 2]
            seen.append(trial.number)
            return x + (kind == "a")

        study.optimize(objective, n_trials=3)
        assert seen == [0, 1, 2]
        assert study.trials[0].params["x"] == 0.25
        for trial in study.trials:  # finished: the database's record, completion time included
            _same(storage.get_trial(trial._trial_id), plain.get_trial(trial._trial_id))
    finally:
        plain.engine.dispose()
        close_storage(storage)


def test_a_finished_trial_is_no_longer_served_from_the_copy(db_url: str) -> None:
    storage = open_storage(db_url)
    assert isinstance(storage, OwnTrials)
    try:
        study = optuna.create_study(study_name="s", storage=storage)
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        assert storage.get_trial(trial._trial_id).state == optuna.trial.TrialState.RUNNING
        study.tell(trial, 1.0)
        done = storage.get_trial(trial._trial_id)
        assert done.state == optuna.trial.TrialState.COMPLETE
        assert done.values == [1.0]
        assert done.datetime_complete is not None
    finally:
        close_storage(storage)
