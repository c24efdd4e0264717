"""The ``prune`` (structured) and ``magnitude`` methods, which share the ``prune`` options."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reoptd.plugins import COMPRESS_METHODS, CompressMethod
from reoptd.policy import Fraction

__all__ = ["MAGNITUDE", "METHOD", "Prune"]


class Prune(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Fraction = Field(
        0.5,
        description="share of hidden neurons removed (prune) or of weights zeroed (magnitude)",
    )
    finetune_epochs: int = Field(
        2, ge=0, description="epochs of fine-tuning after structured pruning (0: none)"
    )


def _structured(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._prune import structured_prune

    options = policy.compress.options("prune", Prune)
    return structured_prune(
        model,
        options.amount,
        fit_rows,
        fit_rows[policy.target],
        finetune_epochs=options.finetune_epochs,
    )


def _magnitude(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._prune import magnitude_prune

    return magnitude_prune(model, policy.compress.options("prune", Prune).amount)


METHOD = COMPRESS_METHODS.register(
    CompressMethod(
        name="prune",
        description="structured, removes hidden neurons",
        apply=_structured,
        order=20,
        config=Prune,
        explain=lambda policy: (
            f"structured pruning of {policy.compress.options('prune', Prune).amount:.0%} of the"
            " hidden neurons"
        ),
    )
)
MAGNITUDE = COMPRESS_METHODS.register(
    CompressMethod(
        name="magnitude",
        description="zeroes the smallest weights (never faster on dense kernels)",
        apply=_magnitude,
        order=30,
        default=False,
        options="prune",
        explain=lambda policy: (
            f"magnitude pruning of {policy.compress.options('prune', Prune).amount:.0%} of the"
            " weights"
        ),
    )
)
