"""Augment: data-side options (class rebalancing with imbalanced-learn; noise and mixup while a
torch MLP trains), each tried as one more challenger and kept only if it wins on the holdout.

Every option trains a model the way the current challenger was trained (``ctx.recipe``: its
parameters, warm from the champion or from scratch) on the augmented training rows; the holdout
is never augmented and judges them all, the current challenger included. The best option
replaces the challenger only if it beats it; otherwise nothing changes. A later ``tune`` step's
final fit uses the kept option too.

Resampled rows keep the time order the torch MLP's early stopping relies on (its newest 10%
validate): random over/under-sampling keeps each drawn row's timestamp, and a SMOTE row takes the
timestamp of a random training row of its class.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models import build_model
from reoptd.monitor import evaluate
from reoptd.optimize._base import RunContext
from reoptd.optimize._retrain import MIN_JUDGING_ROWS, augmented_rows, fit_model
from reoptd.policy import Policy


class Augment:
    name = "augment"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        policy, spec = ctx.policy, ctx.policy.augment
        if ctx.challenger is None:
            raise OptimizeError("augment: no challenger (the pipeline needs `retrain` before it)")
        if len(ctx.holdout) < MIN_JUDGING_ROWS:
            raise OptimizeError(
                f"augment: model {policy.model!r}: {len(ctx.holdout)} holdout rows, fewer than"
                f" {MIN_JUDGING_ROWS} to judge the options on (raise promote.holdout)"
            )
        metric, higher = policy.metric, policy.higher_is_better()
        methods = spec.applicable(policy.task, policy.train.family)
        params = ctx.recipe.get("params", dict(policy.train.params))
        warm = bool(ctx.recipe.get("warm", False))
        best = _score(ctx, ctx.challenger)
        candidates: dict[str, dict[str, Any]] = {"none": {metric: best}}
        chosen: dict[str, Any] | None = None
        for method in methods:
            augmentation = {"method": method, "value": _value(policy, method)}
            started = time.perf_counter()
            try:
                train = augmented_rows(ctx, augmentation)
                model = fit_model(build_model(policy, params), ctx, train, augmentation, warm=warm)
            except (OptimizeError, ValueError) as exc:  # e.g. too few minority rows for SMOTE
                candidates[method] = {"error": str(exc)}
                continue
            score = _score(ctx, model)
            candidates[method] = {
                metric: score,
                "rows": len(train),
                "seconds": round(time.perf_counter() - started, 4),
            }
            if score > best if higher else score < best:
                best, chosen = score, augmentation
                ctx.challenger = model
        if chosen is not None:
            ctx.recipe = {**ctx.recipe, "augment": chosen}
        name = chosen["method"] if chosen else "none"
        return {
            "metric": metric,
            "holdout_rows": len(ctx.holdout),
            "tried": methods,
            "candidates": candidates,
            "chosen": name,
            "reason": (
                f"{name} wins: holdout {metric} {best:.4f} vs {candidates['none'][metric]:.4f}"
                " without augmentation"
                if chosen
                else f"no option beats the challenger's holdout {metric} {best:.4f}: kept as is"
            ),
        }


def _score(ctx: RunContext, model: Any) -> float:
    policy = ctx.policy
    metrics = evaluate(model, ctx.holdout, policy.target, [policy.metric], policy.promote.costs)
    return metrics[policy.metric]


def _value(policy: Policy, method: str) -> float | int:
    spec = policy.augment
    return {"noise": spec.noise, "mixup": spec.mixup, "smote": spec.k_neighbors}.get(method, 1)


def resample(policy: Policy, frame: pd.DataFrame, method: str) -> pd.DataFrame:
    """``frame`` rebalanced by ``method`` (random_over, random_under, smote), oldest row first.
    Raises ``ValueError`` (imbalanced-learn's) when it cannot, e.g. too few minority rows."""
    spec = policy.augment
    target, ts = policy.target, policy.timestamp
    labels = frame[target]
    if method in ("random_over", "random_under"):
        from imblearn.over_sampling import RandomOverSampler
        from imblearn.under_sampling import RandomUnderSampler

        sampler = (RandomOverSampler if method == "random_over" else RandomUnderSampler)(
            random_state=spec.seed
        )
        sampler.fit_resample(np.zeros((len(frame), 1)), labels)
        rows = frame.iloc[np.sort(sampler.sample_indices_)]
        return rows.reset_index(drop=True)
    if method != "smote":
        raise ValueError(f"augment: {method!r} does not resample rows")
    from imblearn.over_sampling import SMOTE, SMOTEN, SMOTENC

    numerical, categorical = policy.features.numerical, policy.features.categorical
    x = frame[[*numerical, *categorical]].copy()
    for column in categorical:
        x[column] = x[column].astype(str)
    k = spec.k_neighbors
    if numerical and categorical:
        smote: Any = SMOTENC(
            categorical_features=categorical, k_neighbors=k, random_state=spec.seed
        )
    elif categorical:
        smote = SMOTEN(k_neighbors=k, random_state=spec.seed)
    else:
        smote = SMOTE(k_neighbors=k, random_state=spec.seed)
    x_all, y_all = smote.fit_resample(x, labels)
    synthetic = pd.DataFrame(x_all).iloc[len(frame) :].reset_index(drop=True)
    new_labels = np.asarray(y_all)[len(frame) :]
    synthetic[target] = new_labels
    if ts in frame.columns and len(synthetic):
        rng = np.random.default_rng(spec.seed)
        times = frame[ts].to_numpy()
        by_label = {label: times[(labels == label).to_numpy()] for label in np.unique(new_labels)}
        synthetic[ts] = [rng.choice(by_label[label]) for label in new_labels]
    out = pd.concat([frame, synthetic], ignore_index=True)
    if ts in out.columns:
        out = out.sort_values(ts, kind="stable").reset_index(drop=True)
    return out
