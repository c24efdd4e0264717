"""The search: an Optuna multi-objective study whose trials are backtests of candidate policies.

The history is cut in two by time. Trials backtest on the older part only (the search); every
Pareto-optimal candidate, the base policy and the static and periodic baselines are then
backtested on the newest part (the holdout), which the search never saw: the front's value and
cost there are the honest estimate of what a policy will do next. A held-out run warms up on all
the rows before the cut, so each policy trains its first model on its own window of the past.

The study lives in the daemon's database (the Optuna storage the tune step uses): each trial
keeps its candidate's YAML, its search scores and, once measured, its held-out scores, so a study
interrupted or extended (same name, more ``--trials``) resumes, and optuna-dashboard shows it.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import yaml
from tqdm import tqdm

from reoptd.backtest import BacktestCache, BacktestError, Span, load_history, run_backtest
from reoptd.errors import ReoptdError
from reoptd.policy import Policy, load_policy
from reoptd.policy_tune._knobs import candidate, describe, parse_candidate, seeds, to_yaml
from reoptd.policy_tune._phases import phase_warmups

log = logging.getLogger("reoptd.policy_tune")
optuna.logging.set_verbosity(optuna.logging.WARNING)

Cost = Literal["retrains", "seconds"]
SETTINGS = "reoptd_policy_tune"  # study user attr: what the study was started with
HELDOUT = "heldout:"
NO_DELAY = Span(rows=0)  # study user attrs: held-out scores by candidate hash


class TuneError(ReoptdError):
    """The policy search cannot run as asked (a study started with other options, no trial
    completed, an impossible pick)."""


@dataclass(frozen=True)
class Scores:
    """A policy's value and cost on one part of the history (a backtest's served or baseline)."""

    value: float | None
    retrains: float  # a count, or on the searched rows the mean over the grid's phases
    promotions: float
    seconds: float  # optimize seconds

    def cost(self, kind: Cost) -> float:
        return float(self.retrains) if kind == "retrains" else self.seconds

    @classmethod
    def mean(cls, runs: Sequence[Scores]) -> Scores:
        """The mean of ``runs`` (one policy at several phases of the grid); the value is None
        when a run scored no labelled row."""
        values = [r.value for r in runs if r.value is not None]
        return cls(
            value=float(np.mean(values)) if len(values) == len(runs) else None,
            retrains=float(np.mean([r.retrains for r in runs])),
            promotions=float(np.mean([r.promotions for r in runs])),
            seconds=float(np.mean([r.seconds for r in runs])),
        )


@dataclass
class Candidate:
    """One policy of the front (or the base): its file, and its scores on both parts."""

    trial: int | None  # the Optuna trial number (None: the base policy as written)
    text: str  # the policy YAML, without the comment ``--out`` adds
    summary: str
    search: Scores
    heldout: Scores | None = None
    # the periodic baseline of its own held-out run: retraining before every step on this
    # candidate's train.window (the result's ``periodic`` uses the base policy's window)
    heldout_periodic: Scores | None = None


@dataclass
class TuneResult:
    study: str
    model: str
    metric: str
    higher_is_better: bool
    cost: Cost
    search_rows: int
    holdout_rows: int
    holdout: float
    trials: int  # completed trials
    failed: int
    front: list[Candidate]  # Pareto-optimal on the search part, by cost
    base: Candidate
    static: Scores  # the held-out baselines, from the base policy's held-out run
    periodic: Scores
    points: list[tuple[float, float]] = field(default_factory=list)  # every trial: value, cost
    seconds: float = 0.0
    phases: int = 1  # grids of checks each trial ran on; its search scores are their mean

    def grids(self) -> str:
        """How many grids of checks the search scores are the mean of, in words."""
        return "one grid of checks" if self.phases == 1 else f"{self.phases} grids of checks"


def tune_policy(
    base_file: Path,
    data: Path,
    *,
    storage: str | None,
    study_name: str | None = None,
    trials: int = 60,
    budget: timedelta | None = None,
    holdout: float = 0.3,
    warmup: float | Span = 0.2,
    step: Span | None = None,
    label_delay: Span = NO_DELAY,
    time_column: str | None = None,
    cost: Cost = "retrains",
    seed: int | None = 0,
    phases: int = 2,
    progress: bool = True,
) -> TuneResult:
    """Search the base policy's knobs on the older part of ``data``; measure the front on the
    newest ``holdout`` share. ``storage``: an Optuna storage URL (the daemon's database), or
    None for memory (not resumable). ``warmup``: a share of the search part, or a ``Span``.
    ``phases``: grids each trial is backtested on, its scores their mean (``_phases``)."""
    started = time.perf_counter()
    if not 0 < holdout < 1:
        raise TuneError(f"--holdout must be between 0% and 100%, got {holdout:.0%}")
    if phases < 1:
        raise TuneError(f"--phases must be at least 1, got {phases}")
    base = load_policy(base_file)
    raw = yaml.safe_load(base_file.read_text())
    history = load_history(data, base, time_column)
    if history.labels_from is not None:
        raise BacktestError(
            f"{data}: the targets come from data.labels {history.labels_from!r}; policy tune cuts"
            " the history in two and needs the target column in --data (export the joined rows)"
        )
    rows = len(history.frame)
    cut = round(rows * (1 - holdout))
    step = step or Span(duration=base.monitor.every)
    first = Span(rows=max(1, round(cut * warmup))) if isinstance(warmup, float) else warmup
    column = history.policy.timestamp
    name = study_name or f"policy-tune-{base.model}"
    higher = base.higher_is_better()
    settings = {
        "model": base.model,
        "data": str(data),
        "rows": rows,
        "holdout": holdout,
        "cost": cost,
        "warmup": str(first),
        "step": str(step),
        "label_delay": str(label_delay),
        "phases": phases,
        "base": _digest(base_file.read_text()),
    }
    study = optuna.create_study(
        storage=storage or optuna.storages.InMemoryStorage(),
        study_name=name,
        directions=["maximize" if higher else "minimize", "minimize"],
        sampler=_sampler(seed, trials),
        load_if_exists=True,
    )
    _same_settings(study, settings)
    with tempfile.TemporaryDirectory(prefix="reoptd-policy-tune-") as tmp:
        search_file = Path(tmp) / "search.parquet"
        history.frame.iloc[:cut].to_parquet(search_file, index=False)
        # one cache for every trial and held-out backtest: a retrain, drift check or
        # validation another candidate already did is looked up, not redone (trials run one
        # at a time, as the cache requires)
        cache = BacktestCache()

        def backtest(text: str, where: str, file: Path, first_rows: Span) -> dict[str, Any]:
            # the search file holds the time column load_history used (synthetic or not)
            return run_backtest(
                parse_candidate(text, where),
                file,
                warmup=first_rows,
                step=step,
                label_delay=label_delay,
                time_column=column if file == search_file else time_column,
                progress=False,
                cache=cache,
            )

        shortest = _shortest_window(base, history.ts[:cut], label_delay)
        grids = phase_warmups(first, step, history.ts[:cut], phases)

        def search(text: str, where: str) -> tuple[Scores, list[Scores]]:
            """The policy's mean scores on the searched rows over the grids, and each grid's."""
            runs = [_scores(backtest(text, where, search_file, w)["served"]) for w in grids]
            return Scores.mean(runs), runs

        def objective(trial: optuna.Trial) -> tuple[float, float]:
            text = to_yaml(candidate(base, raw, trial, shortest))
            trial.set_user_attr("policy", text)
            try:
                scores, runs = search(text, f"trial {trial.number}")
            except ReoptdError as exc:
                trial.set_user_attr("error", str(exc))
                log.warning("trial %d failed: %s", trial.number, exc)
                raise
            trial.set_user_attr("search", asdict(scores))
            trial.set_user_attr("phases", [asdict(r) for r in runs])
            if scores.value is None:
                trial.set_user_attr("error", "no metric: no labelled row was scored")
                raise TuneError(f"trial {trial.number}: no labelled row was scored")
            return scores.value, scores.cost(cost)

        _close_crashed(study)
        done = [t for t in study.trials if t.state.is_finished()]
        if not done:  # a new study: the base policy first, then its variants (at most trials)
            for number, (what, params) in enumerate(seeds(base, shortest)[:trials]):
                study.enqueue_trial(params, user_attrs={"seed": what, "base": number == 0})
        remaining = trials - len(done)
        if remaining > 0:
            _optimize(study, objective, remaining, budget, progress, higher)
        completed = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])
        if not completed:
            failed = study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL])
            reason = failed[-1].user_attrs.get("error", "?") if failed else "no trial ran"
            raise TuneError(f"study {name}: no trial completed; the last failed with: {reason}")
        front = _front(study)
        base_text = to_yaml(raw)
        base_search = next(
            (_trial_scores(t) for t in completed if t.user_attrs.get("base")),
            None,
        )
        if base_search is None:
            base_search, _ = search(base_text, str(base_file))
        base_candidate = Candidate(None, base_text, _summary(base_text), base_search)
        todo = [base_candidate, *front]
        bar = tqdm(
            total=len(todo), desc="held out", unit="policy", disable=not progress, mininterval=0.5
        )
        baselines: dict[str, Scores] = {}
        for item in todo:
            key = HELDOUT + _digest(item.text)
            stored = study.user_attrs.get(key)
            if stored is None:
                try:
                    report = backtest(item.text, f"trial {item.trial}", data, Span(rows=cut))
                except ReoptdError as exc:
                    if item is base_candidate:  # the baselines come from its run
                        raise TuneError(
                            f"the base policy's held-out backtest failed: {exc}"
                        ) from exc
                    log.warning("trial %s: its held-out backtest failed: %s", item.trial, exc)
                    bar.update()
                    continue
                stored = {
                    "served": asdict(_scores(report["served"])),
                    **{k: asdict(_scores(v)) for k, v in report["baselines"].items()},
                }
                study.set_user_attr(key, stored)
            item.heldout = Scores(**stored["served"])
            item.heldout_periodic = Scores(**stored["periodic"])
            if item is base_candidate:
                baselines = {k: Scores(**stored[k]) for k in ("static", "periodic")}
            bar.update()
        bar.close()
    states = [t.state for t in study.trials]
    return TuneResult(
        study=name,
        model=base.model,
        metric=base.metric,
        higher_is_better=higher,
        cost=cost,
        search_rows=cut,
        holdout_rows=rows - cut,
        holdout=holdout,
        trials=states.count(optuna.trial.TrialState.COMPLETE),
        failed=states.count(optuna.trial.TrialState.FAIL),
        front=front,
        base=base_candidate,
        static=baselines["static"],
        periodic=baselines["periodic"],
        points=[(float(t.values[0]), float(t.values[1])) for t in completed],
        seconds=round(time.perf_counter() - started, 1),
        phases=len(grids),
    )


def _shortest_window(base: Policy, ts: np.ndarray, delay: Span) -> float:
    """Seconds of ``train.window`` that hold, at the searched rows' mean rate, the labels of
    ``train.min_rows`` rows after the promotion holdout and the label delay, with a margin:
    shorter windows only fail to train (seen: half the trials of a 10-trial search)."""
    span = float((ts[-1] - ts[0]) / np.timedelta64(1, "s")) if len(ts) > 1 else 0.0
    if span <= 0:
        return 0.0
    rate = len(ts) / span  # rows per second
    waiting = delay.duration.total_seconds() if delay.duration else (delay.rows or 0) / rate
    return waiting + 1.5 * base.train.min_rows / (1 - base.promote.holdout) / rate


def _startup(trials: int) -> int:
    """Trials before TPE models the front (the seeds count): a quarter of the budget, at most
    10."""
    return min(10, max(1, trials // 4))


def _sampler(seed: int | None, trials: int) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE modelling the knobs jointly (``multivariate``; ``group`` splits the
    define-by-run space by which triggers are on): a short window pays only with a responsive
    trigger and a short cooldown, which independent per-knob models cannot learn."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=_startup(trials), multivariate=True, group=True
        )


def _optimize(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], tuple[float, float]],
    trials: int,
    budget: timedelta | None,
    progress: bool,
    higher: bool,
) -> None:
    bar = tqdm(total=trials, desc="policy tune", unit="trial", disable=not progress)

    def tick(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        bar.update()
        pick = max if higher else min
        best = [t.values[0] for t in study.best_trials]
        if best:
            bar.set_postfix(front=len(best), best=f"{pick(best):.4f}", refresh=False)

    try:
        study.optimize(
            objective,
            n_trials=trials,
            timeout=budget.total_seconds() if budget else None,
            n_jobs=1,  # not in threads: a backtest opens its store with alembic, not thread-safe
            catch=(ReoptdError,),
            callbacks=[tick],
        )
    finally:
        bar.close()


def _same_settings(study: optuna.Study, settings: dict[str, Any]) -> None:
    """A resumed study must search the same history, holdout and cost: its trials' scores are
    only comparable then."""
    before = study.user_attrs.get(SETTINGS)
    if before is None:
        study.set_user_attr(SETTINGS, settings)
        return
    changed = [k for k in settings if before.get(k) != settings[k]]
    if changed:
        what = "; ".join(f"{k} was {before.get(k)!r}, now {settings[k]!r}" for k in changed)
        raise TuneError(
            f"study {study.study_name} was started with other options ({what}): resume it with the"
            " same ones, or give --study a new name"
        )


def _close_crashed(study: optuna.Study) -> None:
    """Trials left running by a process that died (one tuner per study) are marked failed, so
    that they count as spent and the study goes on."""
    for trial in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def _front(study: optuna.Study) -> list[Candidate]:
    """The Pareto-optimal trials by cost, one per point: trials that tie on both objectives
    (say every policy that never retrains) are one point, shown by the first of them."""
    seen: set[tuple[float, ...]] = set()
    front: list[Candidate] = []
    for trial in sorted(study.best_trials, key=lambda t: (t.values[1], t.number)):
        text, point = trial.user_attrs["policy"], tuple(trial.values)
        if point in seen:
            continue
        seen.add(point)
        front.append(Candidate(trial.number, text, _summary(text), _trial_scores(trial)))
    return front


def _trial_scores(trial: optuna.trial.FrozenTrial) -> Scores:
    return Scores(**trial.user_attrs["search"])


def _scores(part: dict[str, Any]) -> Scores:
    return Scores(
        value=part["value"],
        retrains=int(part["retrains"]),
        promotions=int(part["promotions"]),
        seconds=float(part["optimize_seconds"]),
    )


def _summary(text: str) -> str:
    return describe(parse_candidate(text, "candidate"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
