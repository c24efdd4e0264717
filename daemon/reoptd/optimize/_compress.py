"""Compress: replace the challenger (or, without retrain, the champion) by its best compressed
form, chosen by measuring every candidate (``reoptd.optimize.compress``).

Candidates learn (distillation, fine-tuning after pruning) from the training rows and are scored
on the holdout: rows the model being compressed never trained on. Scoring on its own training rows
would flatter the uncompressed model and make every candidate look worse than it is. Validate
then judges the chosen candidate on the same holdout, so its margin there is slightly optimistic:
it was the best of several on those rows.
"""

from __future__ import annotations

from typing import Any

from reoptd.errors import OptimizeError
from reoptd.optimize._base import RunContext
from reoptd.optimize.compress import compress_model

MIN_SCORING_ROWS = 10


class Compress:
    name = "compress"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        cfg = policy.compress
        baseline = ctx.challenger
        source = "challenger"
        scoring = ctx.holdout
        if baseline is None:
            if ctx.champion is None:
                raise OptimizeError(
                    f"compress: model {policy.model!r} has no champion to compress yet; its first"
                    " run needs a `retrain` step"
                )
            baseline, source = ctx.champion.model, f"champion v{ctx.champion.version}"
            ctx.compressing_champion = True
            until = ctx.champion.trained_until
            if until is not None:  # only rows the champion did not learn from
                scoring = scoring[scoring[policy.timestamp] > until]
        if len(scoring) < MIN_SCORING_ROWS:
            raise OptimizeError(
                f"compress: model {policy.model!r}: {len(scoring)} holdout rows the model did not"
                f" train on, fewer than {MIN_SCORING_ROWS} to score candidates on"
                " (raise promote.holdout or wait for newer labelled rows)"
            )
        plan = compress_model(baseline, ctx.train, scoring, policy)
        ctx.challenger = plan.chosen.model
        ctx.compressed = plan.chosen.name != "uncompressed"
        ctx.compress_reason = plan.selection.reason
        return {
            "baseline": source,
            "objective": cfg.objective,
            "batch_size": cfg.batch_size,
            "batch_sizes": cfg.all_batch_sizes,
            "threads": cfg.threads,
            "timer": cfg.timer,
            "max_metric_drop": cfg.max_metric_drop,
            "metric": policy.metric,
            "scoring_rows": len(scoring),
            **plan.record(),
        }
