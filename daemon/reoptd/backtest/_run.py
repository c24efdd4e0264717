"""Replaying a history through the daemon's own loop, scoring it prequentially.

The backtest drives the very ``ModelLoop.cycle`` the live daemon runs (check -> decide ->
optimize -> promote), on a simulated clock, against a ``ReplaySource`` of the file. Each step's
rows are scored by the champion in force before the step, next to two baselines scored on the
same rows in the same run: ``static`` (the warm-up model, never changed) and ``periodic``
(retrained before every step on the policy's training window).

With a ``BacktestCache`` (the default: a fresh one per call; pass one to share it between
backtests, ``False`` for none) every retrain, drift check and prediction is looked up by its
content address first (``_cache.py``); the report is the same, only faster to produce.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

from reoptd.backtest._cache import (
    CODE_VERSION,
    BacktestCache,
    HistoryRows,
    StepMemoModel,
    digest,
    frame_digest,
    memo_evaluate,
    report_key,
    retrain_key,
    retrain_spec,
)
from reoptd.backtest._cached_loop import CachedExecutor, CachedVersions
from reoptd.backtest._history import (
    BacktestError,
    Span,
    Steps,
    cut_steps,
    label_times,
    load_history,
)
from reoptd.cycle import CycleOutcome, ModelLoop
from reoptd.data import ReplaySource, labelled
from reoptd.errors import OptimizeError
from reoptd.metrics import Metrics
from reoptd.models import Model, build_model
from reoptd.monitor import NEEDS_SCORE, CheckResult, score
from reoptd.optimize import InlineExecutor
from reoptd.policy import Costs, Decision, Policy
from reoptd.signals import Signals
from reoptd.store import MemoryStore, Store, open_store
from reoptd.threads import apply_thread_budget, thread_budget

log = logging.getLogger("reoptd.backtest")

NO_DELAY = Span(rows=0)


@dataclass
class _Scored:
    """Predictions of one contender over all scored rows, and its per-step metric."""

    pred: list[np.ndarray] = field(default_factory=list)
    proba: list[np.ndarray] = field(default_factory=list)
    retrains: int = 0
    promotions: int = 0
    optimize_seconds: float = 0.0

    def add(
        self,
        model: Model,
        rows: pd.DataFrame,
        y: np.ndarray,
        metric: str,
        costs: Costs | None = None,
        memo: tuple[BacktestCache, str] | None = None,
    ) -> float | None:
        """Score ``rows`` with ``model``; keep the predictions; return the step's metric.
        ``memo``: the cache and the content key of (``rows``, ``y``, ``metric``, ``costs``),
        to look the result up by it and the model's identity (memoized models have one)."""
        if rows.empty:
            return None

        def compute() -> tuple[np.ndarray, np.ndarray | None, float | None]:
            pred = model.predict(rows)
            proba = model.predict_score(rows) if metric in NEEDS_SCORE else None
            return pred, proba, _clean(score(metric, y, pred, proba, costs))

        identity = getattr(model, "identity", None)
        if memo is None or not isinstance(identity, str):
            pred, proba, value = compute()
        else:
            cache, where = memo
            pred, proba, value = cache.lookup("step", digest(identity, where), compute)
        self.pred.append(pred)
        if proba is not None:
            self.proba.append(proba)
        return value


class _Unscraped(Metrics):
    """The loop's metrics in a backtest, where no one scrapes them: a check's gauges (some
    forty labelled series per cycle, each set through prometheus_client) and counters (checks,
    data errors), the validation thresholds and a decision's counter are not exported.
    Nothing the loop decides reads them; what it exports elsewhere (runs, step durations,
    the loop's own error counters) still is."""

    def export_check(
        self,
        model: str,
        status: str,
        result: CheckResult | None = None,
        signals: Signals | None = None,
        *,
        data_error: bool = False,
    ) -> None:
        return None

    def export_thresholds(self, policy: Policy, validation: dict[str, float]) -> None:
        return None

    def export_decision(self, model: str, decision: Decision) -> None:
        return None


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    """A backtest report less what measures the run's speed (seconds) or its cache (hits and
    misses): what two runs of one backtest, cached or not, must agree on."""
    plain: dict[str, Any] = json.loads(json.dumps(report))
    plain.pop("seconds")
    plain.pop("cache", None)
    for part in (plain["served"], *plain["baselines"].values()):
        part.pop("optimize_seconds")
    return plain


def run_backtest(
    policy: Policy,
    data: Path,
    *,
    warmup: Span,
    step: Span,
    label_delay: Span = NO_DELAY,
    time_column: str | None = None,
    home: Path | None = None,
    progress: bool = True,
    policy_file: str | None = None,
    cache: BacktestCache | Literal[False] | None = None,
) -> dict[str, Any]:
    """Run the backtest and return its report (``reoptd backtest --help`` names the fields).

    Bad input (missing columns, an unparseable time column, a warm-up longer than the data)
    raises ``BacktestError`` before any work starts. The loop's state is kept in memory
    unless ``home`` is given (then an SQLite database and artifacts there, to inspect).
    ``cache``: the results of earlier backtests to reuse (and extend); None: a new in-memory
    one; False: compute everything (the reference path).
    """
    started = time.perf_counter()
    threads = apply_thread_budget(thread_budget(concurrent=os.cpu_count() or 1), "backtest", log)
    history = load_history(data, policy, time_column)
    steps = cut_steps(history, warmup, step)
    label_at = label_times(history, label_delay)
    source = ReplaySource(
        history.frame, history.policy.timestamp, history.policy.target, label_at, history.policy
    )
    memo: str | None = None
    if cache is None:
        cache = BacktestCache()
    before = cache.stats.to_dict() if cache else None
    if cache and cache.reports and home is None:  # a given home is a store to fill: replay
        memo = report_key(history.frame, label_at, history.policy, warmup, step)
        found = cache.report(memo)
        if found is not None:
            seconds = round(time.perf_counter() - started, 3)
            return {**found, "policy_file": policy_file, "data": str(data), "seconds": seconds}
    # the loop's state: in memory (``MemoryStore``, the same store contract as the daemon's
    # SQL store) unless ``home`` asks for a database to inspect afterwards; a cycle's ~30
    # queries and 4 commits through SQLAlchemy were most of a cached replay. The artifacts go
    # to memory-backed files when the machine has them.
    shm = Path("/dev/shm")
    scratch = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="reoptd-backtest-", dir=scratch) as tmp:
        if home is not None:
            registry = open_store(f"sqlite:///{home / 'reoptd.db'}", home / "artifacts")
        else:
            registry = MemoryStore(Path(tmp) / "artifacts")
        try:
            report = _replay(
                history.policy,
                history.frame,
                steps,
                source,
                registry,
                progress,
                cache or None,
                _array_digest(label_at) if cache else "",
            )
        finally:
            registry.close()
    if cache:
        report["cache"] = _delta(before, cache.stats.to_dict())
    whole = {
        "policy": history.policy.model_dump(mode="json", by_alias=True),
        "policy_file": policy_file,
        "data": str(data),
        "metric": history.policy.metric,
        "higher_is_better": history.policy.higher_is_better(),
        "rows_scored": report.pop("rows_scored"),
        "steps": len(steps.starts),
        "seconds": round(time.perf_counter() - started, 3),
        "options": {
            "warmup": str(warmup),
            "step": str(step),
            "label_delay": str(label_delay),
            "time_column": None if history.synthetic_time else history.policy.timestamp,
            "threads": threads,
        },
        **report,
    }
    if cache and memo is not None:
        cache.keep_report(memo, whole)
    return whole


def _replay(
    policy: Policy,
    frame: pd.DataFrame,
    steps: Steps,
    source: ReplaySource,
    registry: Store,
    progress: bool,
    cache: BacktestCache | None = None,
    labels_key: str = "",
) -> dict[str, Any]:
    """Replay the steps; ``labels_key``: a digest of when each row's label arrives (with a
    cache)."""
    metric, target = policy.metric, policy.target
    if cache is None:  # runs in this thread: a worker process per run buys a backtest nothing
        loop = ModelLoop(policy, registry, _Unscraped(), source=source, executor=InlineExecutor())
    else:
        executor = CachedExecutor(cache)
        loop = ModelLoop(policy, registry, _Unscraped(), source=source, executor=executor)
        loop.versions = CachedVersions(
            registry, policy.model, cache, HistoryRows(frame, policy.features.all, policy.timestamp)
        )
        loop.measure = memo_evaluate(cache)
    loop.start()
    boot = loop.cycle(steps.starts[0].to_pydatetime())
    if boot.run is None or boot.run.outcome != "promoted":
        reason = boot.run.reason if boot.run else "no run"
        raise BacktestError(f"the warm-up model could not be trained: {reason}")
    static_model = periodic_model = loop.champion().model
    served, static, periodic = _Scored(), _Scored(), _Scored()
    costs = policy.promote.costs
    # a step's scores are a function of the model and the step's rows of this history
    history = "" if cache is None else frame_digest(frame, list(frame.columns))
    scoring = digest(history, target, metric, costs.model_dump_json() if costs else "none")
    # the periodic baseline's training rows are a function of this history, when each row's
    # label arrives, the step's start and the training window
    rows_key = digest(history, labels_key, str(policy.train.window))

    def memo(k: int) -> tuple[BacktestCache, str] | None:
        if cache is None:
            return None
        return cache, digest(
            "step", CODE_VERSION, scoring, f"{steps.bounds[k]}:{steps.bounds[k + 1]}"
        )

    truth: list[np.ndarray] = []
    timeline: list[dict[str, Any]] = []
    last_cycle = steps.starts[0]
    count = len(steps.starts)
    bar = tqdm(total=count, desc="backtest", unit="step", disable=not progress, mininterval=0.5)
    for k, start in enumerate(steps.starts):
        end = steps.starts[k + 1] if k + 1 < count else steps.end
        outcome: CycleOutcome | None = None
        if k > 0 and start - last_cycle >= policy.monitor.every:
            outcome = loop.cycle(start.to_pydatetime())
            last_cycle = start
        champion = loop.champion()

        t0 = time.perf_counter()
        retrained = _periodic(policy, source, start, cache, rows_key)
        if retrained is not None:
            try:
                periodic_model = retrained()
                periodic.retrains += 1
                periodic.promotions += 1
            except OptimizeError as exc:
                log.warning("periodic baseline kept its model at step %d: %s", k, exc)
        periodic.optimize_seconds += time.perf_counter() - t0

        rows = frame.iloc[steps.bounds[k] : steps.bounds[k + 1]]
        rows = rows[rows[target].notna()]
        y = rows[target].to_numpy()
        if len(y):
            truth.append(y)
        entry: dict[str, Any] = {
            "step": k,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "rows": len(rows),
            "champion_version": champion.version,
            "served": served.add(champion.model, rows, y, metric, costs, memo(k)),
            "static": static.add(static_model, rows, y, metric, costs, memo(k)),
            "periodic": periodic.add(periodic_model, rows, y, metric, costs, memo(k)),
            "drift_share": None,
            "decision": "bootstrap" if k == 0 else None,
            "promoted": False,
            "run_outcome": None,  # a run at this step: promoted, rejected, failed ...
            "challenger_version": None,
        }
        _describe(entry, outcome)
        timeline.append(entry)
        bar.set_postfix(champion=f"v{champion.version}", drift=entry["drift_share"], refresh=False)
        bar.update()
    bar.close()

    runs = [r for r in registry.runs(policy.model) if r.trigger != "bootstrap"]
    served.retrains = sum(r.challenger_version is not None for r in runs)
    served.promotions = sum(r.outcome == "promoted" for r in runs)
    served.optimize_seconds = sum(r.seconds for r in runs)
    y_all = np.concatenate(truth) if truth else np.array([])
    return {
        "rows_scored": len(y_all),
        "served": _summary(served, metric, y_all, policy.promote.costs),
        "baselines": {
            "static": _summary(static, metric, y_all, policy.promote.costs),
            "periodic": _summary(periodic, metric, y_all, policy.promote.costs),
        },
        "timeline": timeline,
    }


def _periodic(
    policy: Policy,
    source: ReplaySource,
    start: pd.Timestamp,
    cache: BacktestCache | None,
    rows_key: str,
) -> Callable[[], Model] | None:
    """The periodic baseline's retrain at the step starting at ``start`` (call it for the
    model), or None when the training window has fewer than ``train.min_rows`` labelled rows.

    With a cache, the step's retrain key and row count are kept under the content address of
    the rows they came from (``rows_key``: the history and its label times; the step's start),
    so a later backtest of this history finds the model without reading and digesting them."""
    if cache is not None:
        step = digest("periodic", CODE_VERSION, retrain_spec(policy), rows_key, start.isoformat())
        found = cache.get(f"periodic:{step}")
        cache.stats.count("periodic", found is not None)
        if found is not None:
            key, rows = found
            if rows < policy.train.min_rows:
                return None
            model = cache.kept_retrain(key)
            if model is not None:
                kept = StepMemoModel(model, key, cache)
                return lambda: kept  # type: ignore[return-value]  # a Model's interface
    train = labelled(source.read(start - policy.train.window, start), policy)
    key = None
    if cache is not None:
        key = retrain_key(policy, train)
        cache.put(f"periodic:{step}", (key, len(train)))
    if len(train) < policy.train.min_rows:
        return None
    return lambda: _retrain(policy, train, cache, key)


def _retrain(
    policy: Policy, train: pd.DataFrame, cache: BacktestCache | None, key: str | None = None
) -> Model:
    """The periodic baseline's model of this step, through the cache when there is one."""

    def fit() -> Model:
        return build_model(policy).fit(train, train[policy.target])

    if cache is None:
        return fit()
    key, model, _ = cache.retrained(policy, train, fit, key)
    return StepMemoModel(model, key, cache)  # type: ignore[return-value]  # a Model's interface


def _array_digest(values: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(values).tobytes()).hexdigest()


def _delta(before: dict[str, dict[str, int]] | None, after: dict[str, dict[str, int]]) -> dict:
    """This backtest's cache hits and misses (the cache may have served others before)."""
    old = before or {}
    return {
        part: {k: v - old.get(part, {}).get(k, 0) for k, v in counts.items()}
        for part, counts in after.items()
    }


def _describe(entry: dict[str, Any], outcome: CycleOutcome | None) -> None:
    if outcome is None:
        return
    check = outcome.check
    if check is not None and check.status != "ok":
        entry["decision"] = f"check {check.status}: {check.reason}"
        return
    if check is not None and check.drift_share is not None:
        entry["drift_share"] = round(check.drift_share, 4)
    if outcome.decision is None:
        return
    if not outcome.decision.fire:
        entry["decision"] = "hold"
        if outcome.decision.triggers:
            entry["decision"] = "held by guards: " + outcome.decision.summary
        return
    run = outcome.run
    verdict = f"{run.outcome} v{run.challenger_version}" if run else "no run"
    entry["decision"] = f"re-optimize ({', '.join(outcome.decision.triggers)}): {verdict}"
    entry["promoted"] = run is not None and run.outcome == "promoted"
    if run is not None:
        entry["run_outcome"], entry["challenger_version"] = run.outcome, run.challenger_version


def _summary(
    scored: _Scored, metric: str, y: np.ndarray, costs: Costs | None = None
) -> dict[str, Any]:
    value = None
    if scored.pred:
        pred = np.concatenate(scored.pred)
        proba = np.concatenate(scored.proba) if scored.proba else None
        value = _clean(score(metric, y, pred, proba, costs))
    return {
        "value": value,
        "retrains": scored.retrains,
        "promotions": scored.promotions,
        "optimize_seconds": round(scored.optimize_seconds, 3),
    }


def _clean(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 6)
