"""Validate: challenger against champion on the holdout neither has trained on."""

from __future__ import annotations

from typing import Any

from reoptd.errors import OptimizeError
from reoptd.monitor import evaluate, metric_names
from reoptd.optimize._base import RunContext


class Validate:
    name = "validate"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        if ctx.challenger is None:
            raise OptimizeError("validate: no challenger (the pipeline needs a retrain step)")
        names = metric_names(policy)
        metric = policy.metric
        ctx.challenger_metrics = evaluate(ctx.challenger, ctx.holdout, policy.target, names)
        challenger = ctx.challenger_metrics[metric]
        record: dict[str, Any] = {
            "metric": metric,
            "holdout_rows": len(ctx.holdout),
            "challenger": challenger,
        }
        if ctx.champion is None:
            ctx.promote = True
            ctx.reason = f"first version: holdout {metric} {challenger:.4f}"
            return record
        ctx.champion_metrics = evaluate(ctx.champion.model, ctx.holdout, policy.target, names)
        champion = ctx.champion_metrics[metric]
        gain = challenger - champion if policy.higher_is_better() else champion - challenger
        needed = policy.promote.min_improvement
        ctx.promote = gain > 0 and gain >= needed
        verb = "beats" if ctx.promote else "does not beat"
        ctx.reason = (
            f"challenger {metric} {challenger:.4f} {verb} champion v{ctx.champion.version}"
            f" {champion:.4f} on {len(ctx.holdout)} holdout rows"
            f" (gain {gain:+.4f}, needed > 0 and >= {needed:g})"
        )
        record.update({"champion": champion, "gain": gain})
        return record
