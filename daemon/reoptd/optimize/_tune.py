"""Tune: hyperparameter search with Optuna that learns from every earlier run of the model.

Trials train on the older part of the run's training rows and are scored on its newest part
(``tune.validation``); the promotion holdout is never seen. Studies live in the daemon's database
(Optuna's RDB storage, opened once per step by ``_studies``), one per run, so optuna-dashboard
can read them and an interrupted study is resumed, not restarted. With ``warm_start`` the
champion's parameters are the first trial and the best trials of earlier studies follow; with
``seed_history`` earlier trials are handed to the sampler when the search space is unchanged. On
the Ray executor, ``tune.jobs`` trials run as parallel Ray tasks against the study in the shared
database (``_ray.parallel_trials``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import optuna
import pandas as pd

from reoptd.errors import OptimizeError
from reoptd.models import Model, build_model
from reoptd.monitor import evaluate
from reoptd.optimize._base import RunContext
from reoptd.optimize._ray import parallel_trials
from reoptd.optimize._retrain import fit_challenger
from reoptd.optimize._spaces import ITERATIONS, default_key, distribution, grid, search_space
from reoptd.optimize._studies import close_storage, open_storage, then
from reoptd.optimize._validate import batch1_latency
from reoptd.policy import Param, Policy

if TYPE_CHECKING:
    from reoptd.models import SklearnModel
    from reoptd.models.torch import TorchMLP

log = logging.getLogger("reoptd.optimize")
optuna.logging.set_verbosity(optuna.logging.WARNING)

FROM = "reoptd_from"  # user attr on trials copied from an earlier study (``seed_history``)
WARM_FROM_HISTORY = 5


class Tune:
    name = "tune"

    def run(self, ctx: RunContext) -> dict[str, Any]:
        storage = open_storage(ctx.storage)  # one storage (engine) for all of the step's work
        try:
            return self._run(ctx, storage)
        finally:
            close_storage(storage)

    def _run(self, ctx: RunContext, storage: optuna.storages.BaseStorage) -> dict[str, Any]:
        policy, spec = ctx.policy, ctx.policy.tune
        space = search_space(policy)
        fingerprint = _fingerprint(space)
        train, valid = _split(ctx.train, policy)
        name, resumed = _study_name(storage, ctx.study_prefix, policy.model, fingerprint, ctx.now)
        multi = spec.sampler == "nsga2"
        higher = policy.higher_is_better()
        directions: list[Literal["maximize", "minimize"]] = ["maximize" if higher else "minimize"]
        if multi:
            directions.append("minimize")
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,
            sampler=_sampler(spec.sampler, space, spec.seed),
            pruner=_pruner(spec.pruner),
            load_if_exists=True,
        )
        warm = 0
        if not resumed:
            study.set_user_attr("model", policy.model)
            study.set_user_attr("space", fingerprint)
            study.set_user_attr("finished", False)
            if spec.warm_start:
                warm = _warm_start(study, storage, ctx, space, fingerprint, name)
            if spec.seed_history and not multi:
                _seed(study, storage, policy.model, fingerprint, name)
        own = _own(study)
        remaining = spec.trials - len(own)
        timeout = spec.timeout.total_seconds() if spec.timeout else None
        started = time.perf_counter()
        objective = _Objective(policy, space, train, valid, multi)
        progress = _Progress(policy.model, spec.trials, len(own))
        if remaining > 0 and not parallel_trials(
            study, ctx.storage, policy, space, objective, remaining, timeout, progress
        ):
            study.optimize(
                then(objective, progress),
                n_trials=remaining,
                timeout=timeout,
                n_jobs=spec.jobs,
                show_progress_bar=ctx.progress,
                catch=(ValueError,),
            )
        study.set_user_attr("finished", True)
        own = _own(study)
        complete = [t for t in own if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise OptimizeError(f"tune: no trial of study {name} completed")
        best = _best(complete, higher)
        params = {**policy.train.params, **best.params}
        final = fit_challenger(ctx, params)  # warm and/or from scratch, by train.warm_start
        record: dict[str, Any] = {
            "study": name,
            "sampler": spec.sampler,
            "trials": len(own),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in own),
            "warm_trials": warm,
            "resumed": resumed,
            "best_params": best.params,
            "best_value": best.values[0],
            "best_trial": best.number,
            "search_seconds": round(time.perf_counter() - started, 3),
            "validation_rows": len(valid),
            "final_fit": final,
        }
        if multi:
            front = [t for t in study.best_trials if is_own(t)]
            record["pareto_front"] = [
                {"params": t.params, policy.metric: t.values[0], spec.tradeoff: t.values[1]}
                for t in sorted(front, key=lambda t: t.values[1])
            ]
        return record


class _Objective:
    def __init__(
        self,
        policy: Policy,
        space: dict[str, Param],
        train: pd.DataFrame,
        valid: pd.DataFrame,
        multi: bool,
    ) -> None:
        self.policy, self.space, self.train, self.valid, self.multi = (
            policy,
            space,
            train,
            valid,
            multi,
        )
        self.iterations = ITERATIONS.get(default_key(policy))
        # intermediate scores only feed a pruner: without one, a trial is one fit and one score
        # (no staged refits, no round trips to the study's database per stage)
        self.staged = policy.tune.pruner != "none" and not multi

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        params = {name: _suggest(trial, name, p) for name, p in self.space.items()}
        policy = self.policy
        model = build_model(policy, {**policy.train.params, **params})
        target, metric = policy.target, policy.metric
        iterations = self.iterations
        if policy.train.family == "torch" and self.staged:
            # an epoch is the torch MLP's stage: score each one, let the pruner stop the trial
            mlp = cast("TorchMLP", model)  # the torch family builds a TorchMLP
            mlp.fit(self.train, self.train[target], on_epoch=self._reporter(trial, mlp))
            value = evaluate(model, self.valid, target, [metric], self.policy.promote.costs)[metric]
        elif iterations and self.staged and iterations not in params:
            # ITERATIONS names scikit-learn estimators only (see default_key)
            estimator = cast("SklearnModel", model).pipeline.named_steps["est"]
            total = int(estimator.get_params()[iterations])
            estimator.set_params(warm_start=True)
            stages = sorted({max(1, total * k // 4) for k in (1, 2, 3, 4)})
            for step in stages:
                estimator.set_params(**{iterations: step})
                model.fit(self.train, self.train[target])
                value = evaluate(model, self.valid, target, [metric], self.policy.promote.costs)[
                    metric
                ]
                trial.report(value, step)
                if step < total and trial.should_prune():
                    raise optuna.TrialPruned(f"{metric} {value:.4f} after {step} {iterations}")
            estimator.set_params(warm_start=False)
        else:
            model.fit(self.train, self.train[target])
            value = evaluate(model, self.valid, target, [metric], self.policy.promote.costs)[metric]
        if not self.multi:
            return value
        if policy.tune.tradeoff == "size":
            return value, float(len(model.to_bytes()))
        return value, batch1_latency(model, self.valid.head(30))

    def _reporter(self, trial: optuna.Trial, model: Model) -> Callable[[int, Model], None]:
        target, metric = self.policy.target, self.policy.metric
        epochs = model.params["epochs"]

        def report(epoch: int, fitted: Model) -> None:
            value = evaluate(fitted, self.valid, target, [metric], self.policy.promote.costs)[
                metric
            ]
            trial.report(value, epoch)
            if epoch < epochs and trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.4f} after {epoch} epochs")

        return report


def _suggest(trial: optuna.Trial, name: str, param: Param) -> Any:
    if param.choice is not None:
        return trial.suggest_categorical(name, param.choice)
    if param.int_ is not None:
        return trial.suggest_int(
            name, param.int_[0], param.int_[1], step=int(param.step or 1), log=param.log
        )
    assert param.float_ is not None
    return trial.suggest_float(
        name, param.float_[0], param.float_[1], step=param.step, log=param.log
    )


def _split(frame: pd.DataFrame, policy: Policy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Older rows train the trials, the newest `tune.validation` share scores them."""
    cut = len(frame) - round(len(frame) * policy.tune.validation)
    if cut < 10 or len(frame) - cut < 10:
        raise OptimizeError(
            f"tune: {len(frame)} training rows are too few to split off a validation share of"
            f" {policy.tune.validation:.0%}"
        )
    return frame.iloc[:cut], frame.iloc[cut:]


def _fingerprint(space: dict[str, Param]) -> str:
    return json.dumps(
        {k: p.model_dump(mode="json", by_alias=True) for k, p in sorted(space.items())},
        sort_keys=True,
    )


def _studies(storage: Any, model: str) -> list[optuna.study.StudySummary]:
    summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    mine = [s for s in summaries if s.user_attrs.get("model") == model]
    return sorted(mine, key=lambda s: s._study_id)


def _study_name(
    storage: Any, prefix: str, model: str, fingerprint: str, now: Any
) -> tuple[str, bool]:
    """Resume the model's unfinished study with the same space, else start a new one."""
    for summary in reversed(_studies(storage, model)):
        attrs = summary.user_attrs
        if not attrs.get("finished") and attrs.get("space") == fingerprint:
            return summary.study_name, True
    return f"{prefix}.{pd.Timestamp(now).strftime('%Y%m%dT%H%M%S')}", False


def is_own(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether the study ran ``trial`` itself: started (not an enqueued trial still waiting) and
    not a copy from an earlier study (``FROM``). Studies before this rule also wrote a
    ``reoptd_own`` attribute on every trial they ran (a transaction per trial): the same set,
    but for a trial killed before its objective's first line, which now counts as started."""
    return trial.state != optuna.trial.TrialState.WAITING and FROM not in trial.user_attrs


def _own(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if is_own(t)]


def _fits(value: Any, dist: optuna.distributions.BaseDistribution) -> bool:
    try:
        return dist._contains(dist.to_internal_repr(value))
    except (ValueError, TypeError):
        return False


def _warm_start(
    study: optuna.Study,
    storage: Any,
    ctx: RunContext,
    space: dict[str, Param],
    fingerprint: str,
    name: str,
) -> int:
    """Enqueue the champion's parameters, then the best of the model's earlier studies."""
    dists = {k: distribution(p) for k, p in space.items()}
    candidates: list[dict[str, Any]] = []
    champion = {k: v for k, v in ctx.champion_params.items() if k in dists and _fits(v, dists[k])}
    if champion:
        candidates.append(champion)
    higher = ctx.policy.higher_is_better()
    for summary in reversed(_studies(storage, ctx.policy.model)):
        if summary.study_name == name or len(candidates) > WARM_FROM_HISTORY:
            continue
        old = optuna.load_study(study_name=summary.study_name, storage=storage)
        done = [
            t
            for t in old.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE and is_own(t)
        ]
        done.sort(key=lambda t: t.values[0], reverse=higher)
        for trial in done[:WARM_FROM_HISTORY]:
            params = {k: v for k, v in trial.params.items() if k in dists and _fits(v, dists[k])}
            if params and params not in candidates:
                candidates.append(params)
    for params in candidates[: WARM_FROM_HISTORY + 1]:
        study.enqueue_trial(params, skip_if_exists=True)
    return len(candidates[: WARM_FROM_HISTORY + 1])


def _seed(study: optuna.Study, storage: Any, model: str, fingerprint: str, name: str) -> None:
    """Give the sampler the model's earlier trials when they searched the same space."""
    for summary in _studies(storage, model):
        if summary.study_name == name or summary.user_attrs.get("space") != fingerprint:
            continue
        old = optuna.load_study(study_name=summary.study_name, storage=storage)
        history = [
            optuna.trial.create_trial(
                params=t.params,
                distributions=t.distributions,
                values=t.values,
                user_attrs={FROM: summary.study_name},
            )
            for t in old.get_trials(deepcopy=False)
            if t.state == optuna.trial.TrialState.COMPLETE and len(t.values) == 1
        ]
        if history:
            study.add_trials(history)


def _best(trials: list[optuna.trial.FrozenTrial], higher: bool) -> optuna.trial.FrozenTrial:
    key = (lambda t: t.values[0]) if higher else (lambda t: -t.values[0])
    return max(trials, key=key)


def _sampler(kind: str, space: dict[str, Param], seed: int | None) -> optuna.samplers.BaseSampler:
    if kind == "grid":
        return optuna.samplers.GridSampler(grid(space), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    if kind == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5)
    if kind == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.NSGAIISampler(seed=seed)


def _pruner(kind: str) -> optuna.pruners.BasePruner:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


class _Progress:
    """A log line every few trials, so a long study shows where it is in the daemon's log: called
    as each trial ends (``then``), its best is of the trials recorded before this one."""

    def __init__(self, model: str, budget: int, done: int) -> None:
        self.model, self.budget, self.done = model, budget, done

    def __call__(self, study: optuna.Study) -> None:
        self.done += 1
        if self.done % 10 == 0 or self.done == self.budget:
            try:
                best = f"best {study.best_trials[0].values[0]:.4f}"
            except ValueError:
                best = "no trial completed yet"
            log.info("%s: tune trial %d/%d, %s", self.model, self.done, self.budget, best)
