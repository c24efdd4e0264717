"""The ``tune`` step: hyperparameter search with Optuna (options: the policy's ``tune`` block)."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import STEPS, StepPlugin

__all__ = ["STEP"]


def _create() -> Any:
    from reoptd.optimize._tune import Tune

    return Tune()


STEP = STEPS.register(
    StepPlugin(
        name="tune",
        description="search the model's hyperparameters with Optuna (`tune`)",
        create=_create,
    )
)
