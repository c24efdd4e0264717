"""The ``low_rank`` method: truncated-SVD factorization of Linear layers."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reoptd.plugins import COMPRESS_METHODS, CompressMethod
from reoptd.policy import Fraction

__all__ = ["METHOD", "LowRank"]


class LowRank(BaseModel):
    model_config = ConfigDict(extra="forbid")

    energy: Fraction = Field(
        0.9,
        description="each Linear layer keeps the smallest SVD rank that retains this share of"
        " its squared singular values; a layer is factorized only when that makes it smaller",
    )


def _apply(model: Any, fit_rows: Any, policy: Any) -> Any:
    from reoptd.optimize.compress.methods._low_rank import low_rank

    return low_rank(model, policy.compress.options("low_rank", LowRank).energy)


METHOD = COMPRESS_METHODS.register(
    CompressMethod(
        name="low_rank",
        description="truncated-SVD factorization of Linear layers",
        apply=_apply,
        order=40,
        config=LowRank,
        explain=lambda policy: (
            "low-rank factorization keeping"
            f" {policy.compress.options('low_rank', LowRank).energy:.0%} of each layer's SVD energy"
        ),
    )
)
