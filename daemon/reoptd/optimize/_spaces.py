"""Search spaces: from the policy, the model family's default space (the torch MLP's), or
sensible defaults for the common scikit-learn estimators."""

from __future__ import annotations

import math
from typing import Any

import optuna.distributions as od

from reoptd.errors import OptimizeError
from reoptd.plugins import FAMILIES
from reoptd.policy import Param, Policy

_HGB = {
    "learning_rate": Param.model_validate({"float": [0.01, 0.3], "log": True}),
    "max_leaf_nodes": Param.model_validate({"int": [7, 63]}),
    "min_samples_leaf": Param.model_validate({"int": [5, 100], "log": True}),
    "l2_regularization": Param.model_validate({"float": [1e-6, 10.0], "log": True}),
}
_RF = {
    "n_estimators": Param.model_validate({"int": [50, 400], "step": 50}),
    "max_depth": Param.model_validate({"int": [3, 20]}),
    "min_samples_leaf": Param.model_validate({"int": [1, 20]}),
    "max_features": Param.model_validate({"choice": ["sqrt", "log2", 1.0]}),
}
DEFAULTS: dict[str, dict[str, Param]] = {
    "HistGradientBoostingClassifier": _HGB,
    "HistGradientBoostingRegressor": _HGB,
    "RandomForestClassifier": _RF,
    "RandomForestRegressor": _RF,
    "LogisticRegression": {"C": Param.model_validate({"float": [1e-3, 100.0], "log": True})},
    "Ridge": {"alpha": Param.model_validate({"float": [1e-3, 1000.0], "log": True})},
}
#: the parameter that counts boosting iterations / trees, for pruning with warm starts
ITERATIONS = {
    "HistGradientBoostingClassifier": "max_iter",
    "HistGradientBoostingRegressor": "max_iter",
    "RandomForestClassifier": "n_estimators",
    "RandomForestRegressor": "n_estimators",
}


def search_space(policy: Policy) -> dict[str, Param]:
    if policy.tune.space:
        return dict(policy.tune.space)
    family = FAMILIES.get(policy.train.family)
    if family.default_space:
        return {k: Param.model_validate(v) for k, v in family.default_space.items()}
    name = default_key(policy)
    if name not in DEFAULTS:
        raise OptimizeError(
            f"tune: no default search space for {policy.train.estimator}; give one under"
            " tune.space (e.g. {alpha: {float: [0.001, 10], log: true}})"
        )
    return dict(DEFAULTS[name])


def default_key(policy: Policy) -> str:
    """The key of the policy's model in ``DEFAULTS`` and ``ITERATIONS``."""
    if policy.train.family != "sklearn":
        return f"{policy.train.family}.{policy.train.estimator}"  # in neither table
    return policy.train.estimator.rsplit(".", 1)[-1]


def distribution(param: Param) -> od.BaseDistribution:
    if param.choice is not None:
        return od.CategoricalDistribution(param.choice)
    if param.int_ is not None:
        low, high = param.int_
        return od.IntDistribution(low, high, log=param.log, step=int(param.step or 1))
    assert param.float_ is not None
    return od.FloatDistribution(*param.float_, log=param.log, step=param.step)


def grid(space: dict[str, Param], limit: int = 100_000) -> dict[str, list[Any]]:
    """Every value of every parameter, for the grid sampler; floats need a `step`."""
    values: dict[str, list[Any]] = {}
    for name, param in space.items():
        if param.choice is not None:
            values[name] = list(param.choice)
        elif param.int_ is not None:
            step = int(param.step or 1)
            values[name] = list(range(param.int_[0], param.int_[1] + 1, step))
        elif param.step is not None:
            assert param.float_ is not None
            low, high = param.float_
            count = math.floor((high - low) / param.step + 1e-9) + 1
            values[name] = [round(low + i * param.step, 12) for i in range(count)]
        else:
            raise OptimizeError(
                f"tune.space.{name}: the grid sampler needs finite values: add `step` or use"
                " `choice`"
            )
    size = math.prod(len(v) for v in values.values())
    if size > limit:
        raise OptimizeError(f"tune: the grid has {size} points, more than {limit}")
    return values
