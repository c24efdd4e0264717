"""The ``distill`` method: a smaller torch MLP student learns from the model (any family)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reoptd.plugins import COMPRESS_METHODS, CompressMethod

__all__ = ["METHOD", "Distill"]


class Distill(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden: list[int] = Field(
        default_factory=lambda: [64],
        description="layer widths of the student MLP trained on the teacher's soft targets",
    )
    temperature: float = Field(
        4.0, gt=0, description="softens the teacher's and the student's logits (classification)"
    )
    alpha: float = Field(
        0.7,
        ge=0,
        le=1,
        description="weight of the soft-target loss; 1 - alpha goes to the true labels",
    )
    epochs: int = Field(30, ge=1, description="at most this many epochs (early stopping)")
    lr: float = Field(3e-3, gt=0, description="learning rate of the student (AdamW)")


def _apply(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._distill import distill

    d = policy.compress.options("distill", Distill)
    return distill(
        model,
        fit_rows,
        fit_rows[policy.target],
        hidden=d.hidden,
        temperature=d.temperature,
        alpha=d.alpha,
        epochs=d.epochs,
        lr=d.lr,
        timestamp=policy.timestamp,
    )


def _explain(d: Distill) -> str:
    return (
        f"distillation into a smaller MLP student (hidden {d.hidden}, temperature"
        f" {d.temperature:g})"
    )


METHOD = COMPRESS_METHODS.register(
    CompressMethod(
        name="distill",
        description="a smaller MLP student of the model",
        apply=_apply,
        order=10,
        any_model=True,
        config=Distill,
        explain=lambda policy: _explain(policy.compress.options("distill", Distill)),
    )
)
