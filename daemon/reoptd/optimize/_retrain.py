"""Retrain: fit the policy's estimator on the labelled training rows."""

from __future__ import annotations

from typing import Any

from reoptd.models import SklearnModel
from reoptd.optimize._base import RunContext


class Retrain:
    name = "retrain"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        model = SklearnModel.build(policy)
        model.fit(ctx.train, ctx.train[policy.target])
        ctx.challenger = model
        return {"rows": len(ctx.train), "estimator": policy.train.estimator}
