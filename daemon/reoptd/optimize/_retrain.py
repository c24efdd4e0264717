"""Retrain: fit the policy's model (estimator or torch MLP) on the labelled training rows."""

from __future__ import annotations

from typing import Any

from reoptd.models import build_model
from reoptd.optimize._base import RunContext


class Retrain:
    name = "retrain"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        model = build_model(policy)
        model.fit(ctx.train, ctx.train[policy.target])
        ctx.challenger = model
        return {"rows": len(ctx.train), "estimator": policy.train.learner}
