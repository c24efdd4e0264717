"""The daemon's loop, as a backtest runs it: runs execute in the calling thread with the
``retrain`` step looked up in the ``BacktestCache``, and the champion's predictions and drift
checks memoized (``_cache.py``). The loop's own code is unchanged; only what it is given is."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from reoptd.backtest._cache import (
    BacktestCache,
    HistoryRows,
    MemoModel,
    cached_champion,
    digest,
    frame_digest,
    model_identity,
    unwrap,
)
from reoptd.cycle.reference import Versions
from reoptd.errors import OptimizeError
from reoptd.models import Model
from reoptd.monitor import Champion, metric_names
from reoptd.optimize import Execution, InlineExecutor, RunContext
from reoptd.plugins import STEPS
from reoptd.policy import format_duration
from reoptd.store import Store, VersionRecord


class _CachedExecution(Execution):
    def __init__(self, ctx: RunContext, cache: BacktestCache) -> None:
        self.ctx = ctx
        self.cache = cache
        self.cancelled: str | None = None

    def done(self) -> bool:
        return False  # runs in the calling thread when ``result`` is called

    def cancel(self, reason: str) -> None:
        self.cancelled = reason

    def result(self) -> dict[str, dict[str, Any]]:
        if self.cancelled is not None:
            raise OptimizeError(self.cancelled)
        ctx = self.ctx
        champion = "none"
        if ctx.champion is not None:  # the steps get the real model, not the memo
            model = ctx.champion.model
            identity = model.identity if isinstance(model, MemoModel) else None
            champion = f"v{ctx.champion.version}:{identity or model_identity(unwrap(model))}"
            ctx.champion = _plain(ctx.champion)
        policy = ctx.policy
        pipeline = policy.pipeline
        if not pipeline or pipeline[0].name != "retrain":
            return _run_steps(ctx)
        spec = pipeline[0]
        started = time.perf_counter()
        record: dict[str, Any] = {}

        def fit() -> Model:
            record.update(STEPS.get("retrain").create().run(ctx))
            assert ctx.challenger is not None
            return ctx.challenger

        key, model, hit = self.cache.retrained(policy, ctx.train, fit)
        ctx.challenger = model
        if hit:
            record = {"rows": len(ctx.train), "estimator": policy.train.learner, "cached": True}
        seconds = time.perf_counter() - started
        record["seconds"] = round(seconds, 4)
        if seconds > spec.limit.total_seconds():
            raise OptimizeError(
                f"step {spec.name} took {seconds:.1f}s, over its budget of"
                f" {format_duration(spec.limit)}; the challenger is discarded"
            )
        steps = {spec.name: record}
        if [s.name for s in pipeline] == ["retrain", "validate"]:
            verdict = self._validated(ctx, key, champion)
            if verdict is not None:
                steps["validate"] = verdict
                return steps
        # the other steps exactly as the pipeline runs them, on the same context
        ctx.policy = policy.model_copy(update={"pipeline": pipeline[1:]})
        try:
            steps.update(_run_steps(ctx))
        finally:
            ctx.policy = policy
        return steps

    def _validated(self, ctx: RunContext, retrain: str, champion: str) -> dict[str, Any] | None:
        """The validate step's record, its verdict left on ``ctx``, once per (challenger,
        champion, holdout, promote settings). Not when a latency limit decides: a latency is
        measured anew each time."""
        policy = ctx.policy
        if policy.promote.max_latency is not None:
            return None
        columns = [*policy.features.all, policy.target]
        key = digest(
            "validate",
            retrain,
            champion,
            frame_digest(ctx.holdout, columns),
            policy.promote.model_dump_json(),
            json.dumps([policy.metric, policy.higher_is_better(), *metric_names(policy)]),
        )
        started = time.perf_counter()

        def validate() -> _Verdict:
            record = _run_steps(ctx)["validate"]
            return _Verdict(
                record, ctx.challenger_metrics, ctx.champion_metrics, ctx.promote, ctx.reason
            )

        verdict: _Verdict = self.cache.lookup("validate", key, validate)
        ctx.challenger_metrics = dict(verdict.challenger_metrics)
        ctx.champion_metrics = dict(verdict.champion_metrics)
        ctx.promote, ctx.reason = verdict.promote, verdict.reason
        return {**verdict.record, "seconds": round(time.perf_counter() - started, 4)}


@dataclass(frozen=True)
class _Verdict:
    record: dict[str, Any]
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]
    promote: bool
    reason: str


def _run_steps(ctx: RunContext) -> dict[str, dict[str, Any]]:
    """The policy's steps on ``ctx`` in this thread, as the pipeline runs them."""
    return InlineExecutor().submit(ctx).result()


def _plain(champion: Champion) -> Champion:
    model = unwrap(champion.model)
    if model is champion.model:
        return champion
    return Champion(
        champion.version, model, champion.reference, champion.trained_until, champion.calibration
    )


class CachedExecutor(InlineExecutor):
    """Runs in the calling thread, a ``retrain`` first step through the cache."""

    name = "backtest"

    def __init__(self, cache: BacktestCache) -> None:
        self.cache = cache

    def submit(self, ctx: RunContext) -> Execution:
        return _CachedExecution(ctx, self.cache)


class CachedVersions(Versions):
    """The loop's loaded versions, each model's predictions and drift checks memoized."""

    def __init__(self, store: Store, name: str, cache: BacktestCache, rows: HistoryRows) -> None:
        super().__init__(store, name)
        self.cache = cache
        self.rows = rows
        self._plain: Champion | None = None
        self._cached: Champion | None = None
        self._identities: dict[int, str] = {}

    def forget(self) -> None:
        super().forget()
        self._plain = self._cached = None

    def champion(self) -> Champion:
        plain = super().champion()
        if plain is not self._plain or self._cached is None:
            identity = self._identity(plain.version, plain.model)
            self._cached = cached_champion(plain, self.cache, self.rows, identity)
            self._plain = plain
        return self._cached

    def load(self, version: VersionRecord) -> Model:
        model = super().load(version)
        identity = self._identity(version.version, model)
        memo = MemoModel(unwrap(model), identity, self.rows, self.cache)
        return memo  # type: ignore[return-value]  # a Model in all but name

    def _identity(self, version: int, model: Model) -> str:
        if version not in self._identities:
            self._identities[version] = model_identity(unwrap(model))
        return self._identities[version]
