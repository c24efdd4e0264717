"""A study storage that remembers the trials this process is running, so Optuna's re-reads of them
cost no SQL.

Optuna reads a trial back in full (the trial's row and five tables of its parameters, values and
attributes: six statements) when it starts the trial (``Trial.__init__``) and again when it
finishes it (``tell``), and its caching storage serves only *finished* trials from memory. A trial
this process created (or a waiting one it took) is written by this process alone while it runs:
heartbeats are off on the studies' storage, so no other process fails it as stale, and nobody
else tells it. ``OwnTrials`` wraps the caching storage, reads such a trial once, and keeps its
copy up to date with every write made through it (parameters, attributes, intermediate values),
in the form a read would return (attributes through JSON, values as floats). Writes still go to
the database at once, with Optuna's checks; a trial leaves the cache when it finishes (a finished
trial's completion time is the database's), so every other read is the backend's.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class OwnTrials(BaseStorage):
    """``backend`` (Optuna's caching storage over ``rdb``), with this process's running trials
    read once. ``rdb``: the RDB storage underneath, whose engine ``close`` disposes."""

    def __init__(self, rdb: optuna.storages.RDBStorage) -> None:
        self.rdb = rdb
        self.backend = optuna.storages.get_storage(rdb)
        # trial id -> the trial as last read and written here (None: not read yet)
        self._running: dict[int, FrozenTrial | None] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]
        state["_running"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database connections."""
        self.rdb.engine.dispose()

    # -- this process's running trials -------------------------------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        trial_id = self.backend.create_new_trial(study_id, template_trial)
        if template_trial is None or template_trial.state == TrialState.RUNNING:
            with self._lock:
                self._running[trial_id] = None
        return trial_id

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        try:
            taken = self.backend.set_trial_state_values(trial_id, state, values)
        except BaseException:
            with self._lock:
                self._running.pop(trial_id, None)
            raise
        with self._lock:
            if taken and state == TrialState.RUNNING:  # a waiting trial this process took
                self._running[trial_id] = None
            elif state != TrialState.RUNNING:
                self._running.pop(trial_id, None)
        return taken

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            cached = self._running.get(trial_id)
            if cached is not None:
                return copy.deepcopy(cached)  # Optuna's ``Trial`` changes its copy in place
        trial = self.backend.get_trial(trial_id)
        with self._lock:
            if trial_id in self._running and trial.state == TrialState.RUNNING:
                self._running[trial_id] = copy.deepcopy(trial)
        return trial

    def _update(self, trial_id: int, change: Any) -> None:
        with self._lock:
            cached = self._running.get(trial_id)
            if cached is not None:
                change(cached)

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        self.backend.set_trial_param(trial_id, param_name, param_value_internal, distribution)

        def change(trial: FrozenTrial) -> None:
            trial.params[param_name] = distribution.to_external_repr(param_value_internal)
            trial.distributions[param_name] = distribution

        self._update(trial_id, change)

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        self.backend.set_trial_intermediate_value(trial_id, step, intermediate_value)
        self._update(
            trial_id, lambda t: t.intermediate_values.__setitem__(step, float(intermediate_value))
        )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_user_attr(trial_id, key, value)
        stored = json.loads(json.dumps(value))  # what a read returns
        self._update(trial_id, lambda t: t.user_attrs.__setitem__(key, stored))

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self.backend.set_trial_system_attr(trial_id, key, value)
        stored = json.loads(json.dumps(value))
        self._update(trial_id, lambda t: t.system_attrs.__setitem__(key, stored))

    # -- everything else: the backend's ------------------------------------------------------

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        return self.backend.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self.backend.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_user_attr(study_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self.backend.set_study_system_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.backend.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.backend.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[Any]:  # Optuna's FrozenStudy (a private module's)
        return self.backend.get_all_studies()

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self.backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        return self.backend.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self.backend.get_best_trial(study_id)

    def remove_session(self) -> None:
        self.backend.remove_session()
