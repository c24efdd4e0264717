"""The search: an Optuna multi-objective study whose trials are backtests of candidate policies.

The history is cut in two by time. Trials backtest on the older part only (the search); every
Pareto-optimal candidate, the base policy and the static and periodic baselines are then
backtested on the newest part (the holdout), which the search never saw: the front's value and
cost there are the honest estimate of what a policy will do next. A held-out run warms up on all
the rows before the cut, so each policy trains its first model on its own window of the past.

The study lives in the daemon's database (the Optuna storage the tune step uses): each trial
keeps its candidate's YAML, its search scores and, once measured, its held-out scores, so a study
interrupted or extended (same name, more ``--trials``) resumes, and optuna-dashboard shows it.

Trials run on a pool (``_pool``: worker processes, Ray tasks or this thread, as the executor
setting and ``jobs`` say), several at once: this process alone asks the study for each trial's
knobs and tells it the scores its backtest returned, so the storage has one writer.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import yaml
from tqdm import tqdm

from reoptd.backtest import BacktestError, Span, load_history
from reoptd.policy import Policy, load_policy
from reoptd.policy_tune._errors import TuneError
from reoptd.policy_tune._interrupt import held_interrupts
from reoptd.policy_tune._knobs import candidate, describe, parse_candidate, seeds, to_yaml
from reoptd.policy_tune._phases import phase_warmups
from reoptd.policy_tune._pool import Done, Pool, open_pool
from reoptd.policy_tune._trial import PHASE, Cost, Outcome, Scores, Work

log = logging.getLogger("reoptd.policy_tune")
optuna.logging.set_verbosity(optuna.logging.WARNING)

SETTINGS = "reoptd_policy_tune"  # study user attr: what the study was started with
HELDOUT = "heldout:"
NO_DELAY = Span(rows=0)  # study user attrs: held-out scores by candidate hash


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
    where: str = ""  # where the backtests ran: "2 at a time in worker processes"
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
    phases: int = 4,
    progress: bool = True,
    executor: str | None = None,
    jobs: int | None = None,
) -> TuneResult:
    """Search the base policy's knobs on the older part of ``data``; measure the front on the
    newest ``holdout`` share. ``storage``: an Optuna storage URL (the daemon's database), or
    None for memory (not resumable). ``warmup``: a share of the search part, or a ``Span``.
    ``phases``: grids of checks each trial is backtested on, its scores their mean (``_phases``).
    ``executor`` (default: ``REOPTD_EXECUTOR``) and ``jobs`` say where backtests run and how
    many at once (``open_pool``); ``jobs=1`` runs them one at a time in this thread."""
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
    with tempfile.TemporaryDirectory(prefix="reoptd-policy-tune-") as tmp:
        search_file = Path(tmp) / "search.parquet"
        history.frame.iloc[:cut].to_parquet(search_file, index=False)
        pool = open_pool(executor, jobs, Path(tmp))
        try:
            study = optuna.create_study(
                storage=storage or optuna.storages.InMemoryStorage(),
                study_name=name,
                directions=["maximize" if higher else "minimize", "minimize"],
                sampler=_sampler(seed, trials, parallel=pool.slots > 1),
                load_if_exists=True,
            )
            _same_settings(study, settings)
            # the search file holds the time column load_history used (synthetic or not)
            grids = tuple(phase_warmups(first, step, history.ts[:cut], phases))
            column = history.policy.timestamp
            search = Work("", "", search_file, grids, step, label_delay, column)
            heldout = Work("", "", data, (Span(rows=cut),), step, label_delay, time_column)
            shortest = _shortest_window(base, history.ts[:cut], label_delay)
            _close_crashed(study)
            done = [t for t in study.trials if t.state.is_finished()]
            if not study.trials:  # a new study: the base policy first, then its variants (at most
                # trials); seeds an interrupted search left waiting are asked first when it resumes
                for number, (what, params) in enumerate(seeds(base, shortest)[:trials]):
                    study.enqueue_trial(params, user_attrs={"seed": what, "base": number == 0})
            remaining = trials - len(done)
            if remaining > 0:
                log.info("policy tune: %d trials, %s", remaining, pool.describe())
                _search(
                    study,
                    pool,
                    lambda trial: to_yaml(candidate(base, raw, trial, shortest)),
                    search,
                    remaining,
                    budget,
                    progress,
                    higher,
                    cost,
                )
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
                pool.submit(0, replace(search, text=base_text, where=str(base_file)))
                (answer,) = _all(pool, 1)
                if answer.outcome is None:
                    raise TuneError(f"the base policy's backtest failed: {answer.error}")
                base_search = answer.outcome["served"]
            base_candidate = Candidate(None, base_text, _summary(base_text), base_search)
            baselines = _measure(study, pool, heldout, [base_candidate, *front], progress)
        finally:
            where = pool.describe()
            pool.close()
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
        where=where,
        phases=len(grids),
    )


def _all(pool: Pool, count: int) -> list[Done]:
    """Wait for ``count`` submitted backtests."""
    answers: list[Done] = []
    while len(answers) < count:
        got = pool.wait()
        if not got:
            break
        answers += got
    return answers


def _measure(
    study: optuna.Study, pool: Pool, heldout: Work, todo: list[Candidate], progress: bool
) -> dict[str, Scores]:
    """Backtest each policy of ``todo`` (the base policy first) on the whole history from the
    cut, on the pool, unless the study keeps its held-out scores already (one backtest per
    policy text: the base policy is often a front trial too); the held-out baselines come from
    the base policy's run."""
    bar = tqdm(
        total=len(todo), desc="held out", unit="policy", disable=not progress, mininterval=0.5
    )
    keys = [HELDOUT + _digest(item.text) for item in todo]
    stored: dict[str, dict[str, Any]] = {}
    asked: dict[int, str] = {}  # submitted: the first of todo with that text
    for number, (item, key) in enumerate(zip(todo, keys, strict=True)):
        kept = study.user_attrs.get(key)
        if kept is not None:
            stored[key] = kept
        elif key not in asked.values():
            pool.submit(number, replace(heldout, text=item.text, where=f"trial {item.trial}"))
            asked[number] = key
    bar.update(len(todo) - len(asked))
    try:
        for answer in _all(pool, len(asked)):
            key, item = asked[answer.key], todo[answer.key]
            bar.update()
            if answer.outcome is None:
                if todo[0].text == item.text:  # the baselines come from the base policy's run
                    raise TuneError(f"the base policy's held-out backtest failed: {answer.error}")
                log.warning("trial %s: its held-out backtest failed: %s", item.trial, answer.error)
                continue
            stored[key] = {k: asdict(v) for k, v in answer.outcome.items()}
            study.set_user_attr(key, stored[key])
    finally:
        bar.close()
    for item, key in zip(todo, keys, strict=True):
        if key in stored:
            item.heldout = Scores(**stored[key]["served"])
            item.heldout_periodic = Scores(**stored[key]["periodic"])
    return {k: Scores(**stored[keys[0]][k]) for k in ("static", "periodic")}


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


def _sampler(seed: int | None, trials: int, parallel: bool = False) -> optuna.samplers.BaseSampler:
    """Multi-objective TPE modelling the knobs jointly (``multivariate``; ``group`` splits the
    define-by-run space by which triggers are on): a short window pays only with a responsive
    trigger and a short cooldown, which independent per-knob models cannot learn. With trials
    in parallel, ``constant_liar``: a trial still running counts as a bad one, so the next
    candidates are drawn away from it, not on top of it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=_startup(trials),
            multivariate=True,
            group=True,
            constant_liar=parallel,
        )


def _search(
    study: optuna.Study,
    pool: Pool,
    policy: Callable[[optuna.Trial], str],
    search: Work,
    trials: int,
    budget: timedelta | None,
    progress: bool,
    higher: bool,
    cost: Cost,
) -> None:
    """Run ``trials`` trials, ``pool.slots`` at once: this thread asks the study for each
    trial's knobs (``policy``: the candidate's YAML), the pool backtests it, and this thread
    tells the study its scores, so only this process writes to the study. No trial starts
    after ``budget``; those running then finish. On any exception (Ctrl-C included) the trials
    still running are told failed (a resumed study counts them as spent) and the workers
    stopped."""
    bar = tqdm(total=trials, desc="policy tune", unit="trial", disable=not progress)
    deadline = None if budget is None else time.monotonic() + budget.total_seconds()
    pick = max if higher else min
    running: dict[int, optuna.Trial] = {}
    asked = 0
    with held_interrupts() as interrupts:
        try:
            while True:
                while (
                    asked < trials
                    and len(running) < pool.slots
                    and (deadline is None or time.monotonic() < deadline)
                ):
                    interrupts.check()
                    trial = study.ask()
                    running[trial.number] = trial
                    asked += 1
                    text = policy(trial)
                    trial.set_user_attr("policy", text)
                    where = f"trial {trial.number}"
                    pool.submit(trial.number, replace(search, text=text, where=where))
                if not running:
                    interrupts.check()  # a Ctrl-C held while the last trial was told
                    break
                with interrupts.waiting():
                    answers = pool.wait()
                for answer in answers:
                    _tell(study, running.pop(answer.key), answer.outcome, answer.error, cost)
                    bar.update()
                    best = [t.values[0] for t in study.best_trials]
                    if best:
                        bar.set_postfix(front=len(best), best=f"{pick(best):.4f}", refresh=False)
        except BaseException as exc:
            # a second Ctrl-C is held until these are told
            reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"stopped: {exc!r}"
            for trial in running.values():
                trial.set_user_attr("error", f"trial {trial.number}: {reason} before it finished")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        finally:
            bar.close()


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    outcome: Outcome | None,
    error: str | None,
    cost: Cost,
) -> None:
    """Record a trial's search scores, or fail it with the reason in its ``error`` attr."""
    if outcome is not None:
        scores = outcome["served"]
        trial.set_user_attr("search", asdict(scores))
        phases = [asdict(v) for k, v in outcome.items() if k.startswith(PHASE)]
        if phases:
            trial.set_user_attr("phases", phases)
        if scores.value is not None:
            study.tell(trial, (scores.value, scores.cost(cost)))
            return
        error = "no metric: no labelled row was scored"
    trial.set_user_attr("error", error)
    log.warning("trial %d failed: %s", trial.number, error)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)


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


def _summary(text: str) -> str:
    return describe(parse_candidate(text, "candidate"))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
