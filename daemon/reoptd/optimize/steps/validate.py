"""The ``validate`` step: challenger against champion on the holdout neither trained on."""

from __future__ import annotations

from typing import Any

from reoptd.plugins import STEPS, StepPlugin

__all__ = ["STEP"]


def _create() -> Any:
    from reoptd.optimize._validate import Validate

    return Validate()


STEP = STEPS.register(
    StepPlugin(
        name="validate",
        description="challenger against champion on the newest holdout rows",
        create=_create,
    )
)
