"""Retrain: fit the policy's model (estimator or torch MLP) on the labelled training rows, from
scratch and, by ``train.warm_start``, warm from the champion.

With ``auto`` both challengers are trained and the holdout decides (a tie goes to the warm one,
which was cheaper); ``always`` trains only the warm one, ``never`` only the one from scratch. A
champion that cannot be continued (another family or features, a quantized network, an adopted
pipeline, a class it never saw) leaves the one from scratch, and the record says why. Picking on
the holdout makes validate's margin slightly optimistic, as after the compress step: the
challenger was the better of two on those rows.

``fit_challenger`` is shared with ``tune`` (its final fit with the best parameters) and
``augment`` (each option trains like the challenger did): ``ctx.recipe`` remembers how the
challenger was trained.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models import Model, build_model
from reoptd.monitor import evaluate
from reoptd.optimize._base import RunContext

if TYPE_CHECKING:
    from reoptd.models import SklearnModel
    from reoptd.models.torch import TorchMLP

log = logging.getLogger("reoptd.optimize")

MIN_JUDGING_ROWS = 10


class Retrain:
    name = "retrain"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy = ctx.policy
        record = fit_challenger(ctx)
        return {"rows": len(ctx.train), "estimator": policy.train.learner, **record}


def fit_challenger(ctx: RunContext, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train the challenger of ``params`` (default ``train.params``) on ``ctx.train``, warm
    and/or from scratch by ``train.warm_start``; set ``ctx.challenger`` and ``ctx.recipe``;
    return the record: the mode, each candidate's seconds (and holdout metric when both ran),
    which won, and why a warm start was refused."""
    policy = ctx.policy
    mode = policy.train.warm_start
    params = dict(policy.train.params if params is None else params)
    augmentation = ctx.recipe.get("augment")
    train = augmented_rows(ctx, augmentation)
    record: dict[str, Any] = {"warm_start": mode, "fit_rows": len(train)}
    models: dict[str, Model] = {}
    seconds: dict[str, float] = {}
    refused = ""
    if mode != "never":
        start = ctx.champion.model if ctx.champion is not None else None
        warm = build_model(policy, params)
        if start is None:
            refused = "no champion yet"
        elif not hasattr(warm, "warm_problem"):  # a plugin family without warm starts
            refused = f"family {policy.train.family} has no warm start"
        else:
            refused = warm.warm_problem(start)
        if not refused:
            try:
                seconds["warm"], models["warm"] = _timed(
                    lambda: fit_model(warm, ctx, train, augmentation, warm=True)
                )
            except OptimizeError as exc:
                refused = str(exc).removeprefix("warm start: ")
        if refused:
            record["warm_refused"] = refused
            log.info("%s: no warm start: %s", policy.model, refused)
    if mode != "always" or "warm" not in models:
        scratch = build_model(policy, params)
        seconds["scratch"], models["scratch"] = _timed(
            lambda: fit_model(scratch, ctx, train, augmentation, warm=False)
        )
    record["candidates"] = {name: {"seconds": round(s, 4)} for name, s in seconds.items()}
    chosen = next(iter(models))
    if len(models) == 2:
        chosen, reason = _judge(ctx, models, record["candidates"])
        record["reason"] = reason
    ctx.challenger = models[chosen]
    ctx.recipe = {**ctx.recipe, "params": params, "warm": chosen == "warm"}
    record["chosen"] = chosen
    return record


def fit_model(
    model: Model,
    ctx: RunContext,
    train: pd.DataFrame,
    augmentation: dict[str, Any] | None,
    *,
    warm: bool,
) -> Model:
    """Fit ``model`` on ``train`` from scratch or warm from the champion, with a torch
    augmentation (``{"noise": std}`` / ``{"mixup": alpha}``) where one is given."""
    spec = ctx.policy.train
    target = train[ctx.policy.target]
    start: Any = ctx.champion.model if warm and ctx.champion is not None else None
    if model.family == "torch":
        mlp = cast("TorchMLP", model)
        if augmentation and augmentation.get("method") in ("noise", "mixup"):
            mlp.augmentation = {augmentation["method"]: float(augmentation["value"])}
        if start is None:
            return mlp.fit(train, target)
        return mlp.fit_warm(train, target, start, lr_factor=spec.warm_lr, budget=spec.warm_budget)
    estimator = cast("SklearnModel", model)
    if start is None:
        return estimator.fit(train, target)
    return estimator.fit_warm(train, target, start, budget=spec.warm_budget)


def augmented_rows(ctx: RunContext, augmentation: dict[str, Any] | None) -> pd.DataFrame:
    """The training rows, rebalanced when ``augmentation`` is a resampling one."""
    if not augmentation or augmentation.get("method") in ("noise", "mixup"):
        return ctx.train
    from reoptd.optimize._augment import resample

    return resample(ctx.policy, ctx.train, augmentation["method"])


def _timed(fit: Any) -> tuple[float, Model]:
    started = time.perf_counter()
    model = fit()
    return time.perf_counter() - started, model


def _judge(
    ctx: RunContext, models: dict[str, Model], candidates: dict[str, dict[str, Any]]
) -> tuple[str, str]:
    policy = ctx.policy
    metric = policy.metric
    if len(ctx.holdout) < MIN_JUDGING_ROWS:
        return "scratch", f"{len(ctx.holdout)} holdout rows are too few to judge: from scratch"
    scores = {}
    for name, model in models.items():
        scores[name] = evaluate(model, ctx.holdout, policy.target, [metric], policy.promote.costs)[
            metric
        ]
        candidates[name][metric] = scores[name]
    warm, scratch = scores["warm"], scores["scratch"]
    better = warm >= scratch if policy.higher_is_better() else warm <= scratch
    chosen = "warm" if better else "scratch"
    return chosen, (
        f"holdout {metric}: warm {warm:.4f}, from scratch {scratch:.4f} on"
        f" {len(ctx.holdout)} rows: {'warm start' if better else 'from scratch'} kept"
    )
