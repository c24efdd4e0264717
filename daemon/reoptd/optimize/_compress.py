"""Compress: replace the challenger (or, without retrain, the champion) by its best compressed
form, chosen by measuring every candidate on validation rows (``reoptd.compress``).

The newest ``compress.validation`` share of the training rows scores the candidates; the rest is
what distillation and fine-tuning learn from. The holdout stays untouched for validate.
"""

from __future__ import annotations

from typing import Any

from reoptd.compress import compress_model
from reoptd.errors import OptimizeError
from reoptd.optimize._base import RunContext


class Compress:
    name = "compress"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        cfg = policy.compress
        baseline = ctx.challenger
        source = "challenger"
        if baseline is None:
            if ctx.champion is None:
                raise OptimizeError(
                    f"compress: model {policy.model!r} has no champion to compress yet; its first"
                    " run needs a `retrain` step"
                )
            baseline, source = ctx.champion.model, f"champion v{ctx.champion.version}"
            ctx.compressing_champion = True
        n_valid = round(len(ctx.train) * cfg.validation)
        if n_valid < 10 or len(ctx.train) - n_valid < 10:
            raise OptimizeError(
                f"compress: {len(ctx.train)} training rows are too few to split"
                f" {cfg.validation:.0%} off for scoring candidates"
            )
        fit_rows = ctx.train.iloc[: len(ctx.train) - n_valid]
        valid_rows = ctx.train.iloc[len(ctx.train) - n_valid :]
        plan = compress_model(baseline, fit_rows, valid_rows, policy)
        ctx.challenger = plan.chosen.model
        ctx.compressed = plan.chosen.name != "uncompressed"
        ctx.compress_reason = plan.selection.reason
        return {
            "baseline": source,
            "objective": cfg.objective,
            "batch_size": cfg.batch_size,
            "batch_sizes": cfg.all_batch_sizes,
            "threads": cfg.threads,
            "max_metric_drop": cfg.max_metric_drop,
            "metric": policy.metric,
            "validation_rows": n_valid,
            **plan.record(),
        }
