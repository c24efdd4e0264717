"""The ``retrain`` step: fit the policy's model on the labelled training rows."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import STEPS, StepPlugin

__all__ = ["STEP"]


def _create() -> Any:
    from reoptd.optimize._retrain import Retrain

    return Retrain()


STEP = STEPS.register(
    StepPlugin(
        name="retrain",
        description="fit the policy's model on the labelled rows of `train.window`",
        create=_create,
    )
)
