"""`reoptd policy tune`: a multi-objective search over a policy's knobs, each trial a real
backtest, the study in a real SQLite database, the front measured on held-out history."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from reoptd.backtest import Span, parse_span, replay_history, run_backtest
from reoptd.cli import app
from reoptd.metrics import Metrics
from reoptd.policy import load_policy, parse_policy
from reoptd.policy_tune import (
    Candidate,
    Scores,
    TuneError,
    TuneResult,
    parse_pick,
    pick,
    table,
    tune_policy,
    write_policy,
)
from reoptd.policy_tune._knobs import base_params, candidate, describe, seeds, to_yaml
from reoptd.policy_tune._phases import phase_warmups
from reoptd.store import open_store

POLICY = textwrap.dedent(
    """
    version: 1
    model: tiny
    task: classification
    target: y
    timestamp: ts
    features: {numerical: [x1, x2, x3]}
    data: {production: {kind: files, path: unused}}
    monitor:
      every: 100s
      window: 5m
      min_rows: 50
      estimate: false
      backfill: {within: null}
    triggers:
      - drift_share: {above: 0.3, for: 2}
    guards: {cooldown: 5m}
    train:
      estimator: sklearn.linear_model.LogisticRegression
      window: 10m
      min_rows: 100
    promote: {metric: accuracy, min_improvement: 0.01}
    """
)
ROWS = 1600
OPTIONS = {
    "holdout": 0.3,
    "warmup": 0.2,
    "step": parse_span("100", "--step"),
    "progress": False,
    "phases": 2,  # the default is 4: two grids test the same code in half the time
}


def _stream(rows: int = ROWS) -> pd.DataFrame:
    """Three features, one row a second; at half the rows x1 shifts and the concept flips, at
    85% it flips back (a recurring regime, inside the held-out part)."""
    rng = np.random.default_rng(3)
    at = np.arange(rows) / rows
    flipped = (at >= 0.5) & (at < 0.85)
    x = rng.normal(size=(rows, 3))
    x[:, 0] += np.where(flipped, 1.5, 0.0)
    logit = np.where(flipped, -2 * x[:, 0] + x[:, 2], 2 * x[:, 0] - x[:, 1])
    y = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    ts = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(rows), unit="s")
    return pd.DataFrame(x, columns=["x1", "x2", "x3"]).assign(ts=ts, y=y)


@pytest.fixture(scope="module", autouse=True)
def sequential_trials() -> Iterator[None]:
    """Trials run one at a time in the test's process (the inline pool): these tests are
    about the search; test_parallel_trials runs it on worker processes and Ray."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REOPTD_EXECUTOR", "inline")
        yield


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tune")
    base = folder / "base.yaml"
    base.write_text(POLICY)
    data = folder / "history.parquet"
    _stream().to_parquet(data, index=False)
    return base, data


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'reoptd.db'}"


@pytest.fixture(scope="module")
def result(files: tuple[Path, Path], storage: str) -> TuneResult:
    base, data = files
    return tune_policy(base, data, storage=storage, trials=3, **OPTIONS)  # type: ignore[arg-type]


def test_the_search_backtests_each_trial_and_measures_the_front_on_held_out_rows(
    result: TuneResult, storage: str
) -> None:
    assert result.trials + result.failed == 3 and result.trials >= 1
    assert (result.search_rows, result.holdout_rows) == (1120, 480)
    assert result.front and len(result.points) == result.trials
    for item in [result.base, *result.front]:
        assert item.heldout is not None and item.heldout.value is not None
        assert item.heldout_periodic is not None and item.heldout_periodic.retrains == 5
        assert 0 <= item.heldout.value <= 1
        load = parse_policy(item.text, "candidate")  # every candidate is a valid policy
        assert load.model == "tiny"
    # the periodic baseline retrains before every held-out step: 480 rows in steps of 100
    assert result.periodic.retrains == 5 and result.static.retrains == 0
    # one policy per point of the front (trials that tie on both objectives are one point)
    points = [(c.search.value, c.search.retrains) for c in result.front]
    assert len(points) == len(set(points))
    # the front is Pareto-optimal on the search scores: none dominates another
    for a in result.front:
        for b in result.front:
            assert a is b or not (
                a.search.value >= b.search.value  # type: ignore[operator]
                and a.search.retrains <= b.search.retrains
                and (a.search.value, a.search.retrains) != (b.search.value, b.search.retrains)
            )
    # the study is in the database: each trial keeps its policy and search scores
    study = optuna.load_study(study_name="policy-tune-tiny", storage=storage)
    assert len(study.trials) == 3
    assert study.trials[0].user_attrs["base"] is True  # the base policy is trial 0
    # then its variants, as many as the trials allow
    assert [t.user_attrs["seed"] for t in study.trials] == ["base", "short window", "no cooldown"]
    assert [t.user_attrs["base"] for t in study.trials] == [True, False, False]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all("policy" in t.user_attrs and "search" in t.user_attrs for t in done)
    assert any(k.startswith("heldout:") for k in study.user_attrs)
    # each trial ran the searched rows on two grids of checks, half a step apart, and is
    # scored by their mean (the objectives the sampler saw, and the front's search scores)
    for t in done:
        runs = [Scores(**r) for r in t.user_attrs["phases"]]
        assert len(runs) == 2
        mean = Scores.mean(runs)
        assert Scores(**t.user_attrs["search"]) == mean
        assert tuple(t.values) == (mean.value, mean.retrains)


def test_a_study_resumes_with_more_trials_and_refuses_other_options(
    result: TuneResult, files: tuple[Path, Path], storage: str
) -> None:
    base, data = files
    more = tune_policy(base, data, storage=storage, trials=4, **OPTIONS)  # type: ignore[arg-type]
    study = optuna.load_study(study_name="policy-tune-tiny", storage=storage)
    assert len(study.trials) == 4  # one new trial, the three before kept
    assert more.trials + more.failed == 4
    # the held-out scores of policies already measured are read back, not recomputed
    assert more.base.heldout == result.base.heldout
    with pytest.raises(TuneError, match=r"holdout was 0.3, now 0.2.*--study a new name"):
        tune_policy(base, data, storage=storage, trials=4, **{**OPTIONS, "holdout": 0.2})  # type: ignore[arg-type]
    # trials scored on another number of grids are not comparable either
    with pytest.raises(TuneError, match=r"phases was 2, now 3"):
        tune_policy(base, data, storage=storage, trials=4, **{**OPTIONS, "phases": 3})  # type: ignore[arg-type]


def test_the_phases_start_the_steps_a_fraction_of_a_step_later() -> None:
    ts = (pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(1000), unit="s")).to_numpy()
    first, rows, every = Span(rows=200), Span(rows=100), Span(duration=timedelta(seconds=100))
    assert phase_warmups(first, rows, ts, 1) == [first]
    assert phase_warmups(first, rows, ts, 2) == [first, Span(rows=250)]
    assert phase_warmups(first, rows, ts, 4) == [first, *(Span(rows=r) for r in (225, 250, 275))]
    # a duration step and a duration warm-up: the rows at those instants
    later = phase_warmups(Span(duration=timedelta(seconds=200)), every, ts, 2)
    assert later == [Span(duration=timedelta(seconds=200)), Span(rows=250)]
    # a step of fewer rows than phases: a grid on a row already taken is left out
    assert phase_warmups(first, Span(rows=1), ts, 3) == [first]
    # a phase past the data is left out
    assert phase_warmups(Span(rows=990), Span(rows=100), ts, 2) == [Span(rows=990)]
    with pytest.raises(ValueError, match="at least 1"):
        phase_warmups(first, rows, ts, 0)


def test_the_mean_of_the_phases_runs() -> None:
    runs = [Scores(0.8, 4, 4, 1.0), Scores(0.7, 5, 3, 3.0)]
    assert Scores.mean(runs) == Scores(0.75, 4.5, 3.5, 2.0)
    assert Scores.mean(runs[:1]) is runs[0]  # one grid: its counts stay counts
    # a run that scored no labelled row leaves the mean without a value
    assert Scores.mean([runs[0], Scores(None, 0, 0, 0.0)]).value is None


def test_the_base_parameters_reproduce_the_base_policy() -> None:
    base = parse_policy(POLICY, "base")
    raw = yaml.safe_load(POLICY)
    trial = optuna.trial.FixedTrial(base_params(base))
    again = parse_policy(to_yaml(candidate(base, raw, trial)), "again")
    assert again.triggers == base.triggers
    assert again.guards == base.guards
    assert again.train == base.train
    assert again.promote == base.promote
    assert again.monitor == base.monitor and again.data == base.data


def test_the_seeds_are_the_base_then_ever_more_responsive_variants_of_it() -> None:
    base = parse_policy(POLICY, "base")
    raw = yaml.safe_load(POLICY)
    made = seeds(base, min_window=250.0)
    assert [name for name, _ in made] == ["base", "short window", "no cooldown", "first check"]
    policies = [
        parse_policy(to_yaml(candidate(base, raw, optuna.trial.FixedTrial(p), 250.0)), name)
        for name, p in made
    ]
    assert policies[0].train == base.train and policies[0].guards == base.guards
    # the shortest window the search allows: 250 s rounded to the 100 s checks, not 10m
    short = policies[1]
    assert short.train.window.total_seconds() == 200 and short.guards == base.guards
    assert short.triggers == base.triggers
    eager = policies[2]
    assert eager.guards.cooldown.total_seconds() == 0 and eager.train == short.train
    assert eager.triggers[0].drift_share.for_ == 2  # type: ignore[union-attr]
    first = policies[3]
    assert first.triggers[0].drift_share.for_ == 1  # type: ignore[union-attr]
    assert first.triggers[0].drift_share.above == 0.3  # type: ignore[union-attr]
    # a base with the base's window already the shortest: the duplicate variant is left out
    assert [n for n, _ in seeds(base, min_window=600.0)] == ["base", "no cooldown", "first check"]


DRIFTY = POLICY.replace(
    "backfill: {within: null}",
    "backfill: {within: null}\n  drift: {method: wasserstein, threshold: 0.1}",
)


@pytest.mark.filterwarnings("ignore:The value 3.0 of the parameter:UserWarning")
def test_the_drift_threshold_is_a_knob_that_decides_what_the_trigger_sees(
    files: tuple[Path, Path],
) -> None:
    base = parse_policy(DRIFTY, "base")
    raw = yaml.safe_load(DRIFTY)
    params = base_params(base)
    assert params["drift_threshold"] == 0.1 and "drift_cat_threshold" not in params
    # searched from a quarter to four times the base's, only when a drift trigger is on
    space = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(20):
        trial = space.ask()
        drift = candidate(base, raw, trial)["monitor"]["drift"]
        assert trial.params["cooldown_checks"] <= 12  # four times the base's 3 checks
        if trial.params["t0_drift_share"]:
            assert 0.025 <= drift["threshold"] <= 0.4
        else:
            assert "drift_threshold" not in trial.params and drift["threshold"] == 0.1
    # the table's one-line summary names the thresholds the trigger counts with
    fixed = optuna.trial.FixedTrial({**params, "drift_threshold": 0.2})
    summary = describe(parse_policy(to_yaml(candidate(base, raw, fixed)), "summary"))
    assert summary.startswith("drift_share>0.3 x2; feature drift wasserstein>0.2;"), summary
    # the knob reaches the monitor: a stricter per-feature threshold counts fewer features
    # drifted in the same backtest (x1 shifts by 1.5 at half the rows; wasserstein ~1)
    _, data = files
    shares = []
    for threshold in (0.05, 3.0):  # 3.0: beyond the search, a monitor blind to the shift
        text = to_yaml(
            candidate(
                base,
                raw,
                optuna.trial.FixedTrial(
                    {**params, "drift_threshold": threshold, "cooldown_checks": 12}
                ),
            )
        )
        report = run_backtest(
            parse_policy(text, f"threshold {threshold}"),
            data,
            warmup=Span(rows=320),
            step=parse_span("100", "--step"),
            progress=False,
            cache=False,
        )
        shares.append(max(s["drift_share"] or 0.0 for s in report["timeline"]))
    assert shares[0] >= 1 / 3 and shares[1] == 0.0


def _result(points: list[tuple[float, int]]) -> TuneResult:
    def item(n: int, value: float, retrains: int) -> Candidate:
        return Candidate(n, POLICY, "p", Scores(value, retrains, retrains, 0.0))

    front = [item(n, v, r) for n, (v, r) in enumerate(points)]
    none = Scores(0.5, 0, 0, 0.0)
    return TuneResult(
        "s", "tiny", "accuracy", True, "retrains", 10, 5, 0.3, 4, 0, front, front[0], none, none
    )


def test_pick_knee_max_value_and_max_retrains() -> None:
    result = _result([(0.70, 0), (0.80, 2), (0.81, 8), (0.82, 20)])
    assert pick(result, parse_pick("knee")).trial == 1
    assert pick(result, parse_pick("max-value")).trial == 3
    assert pick(result, parse_pick("max-retrains 8")).trial == 2
    assert pick(result, parse_pick("max-retrains=1")).trial == 0
    # the knee reaches most of the front's value at a small share of its cost: +19 points for
    # 3 of the 20 retrains, not the steeper first step (+7 for 1) nor the last point
    steps = _result([(0.60, 0), (0.67, 1), (0.79, 3), (0.80, 20)])
    assert pick(steps, parse_pick("knee")).trial == 2
    # nothing buys value: the cheapest; lower is better (log loss): the same shape mirrored
    assert pick(_result([(0.8, 0), (0.8, 4)]), parse_pick("knee")).trial == 0
    loss = _result([(0.40, 0), (0.33, 1), (0.21, 3), (0.20, 20)])
    loss.higher_is_better = False
    assert pick(loss, parse_pick("knee")).trial == 2
    with pytest.raises(TuneError, match="expected knee"):
        parse_pick("best")
    with pytest.raises(TuneError, match="the fewest: 1"):
        pick(_result([(0.8, 1), (0.9, 3)]), parse_pick("max-retrains 0"))


def test_the_written_policy_validates_and_runs_in_the_daemon(
    result: TuneResult, files: tuple[Path, Path], tmp_path: Path
) -> None:
    base, data = files
    choice = parse_pick("knee")
    chosen = pick(result, choice)
    out = tmp_path / "tuned.yaml"
    write_policy(result, chosen, choice, out, base, data)
    text = out.read_text()
    assert text.startswith("# Tuned by `reoptd policy tune`")
    assert "Picked by --pick knee" in text and "Held out" in text and "periodic" in text
    assert "Search (mean of 2 grids of checks): accuracy" in text
    assert chosen.summary in table(result, chosen)
    code = CliRunner().invoke(app, ["policy", "validate", str(out)])
    assert code.exit_code == 0, code.output
    policy = load_policy(out)
    store = open_store(f"sqlite:///{tmp_path / 'daemon.db'}", tmp_path / "artifacts")
    try:
        replay = replay_history([policy], data, store, Metrics())
        assert replay.cycles["tiny"] > 0
        assert store.champion("tiny") is not None  # the daemon trained and promoted a model
    finally:
        store.close()


@pytest.mark.slow
def test_the_command_prints_the_front_plots_it_and_writes_the_pick(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    base, data = files
    out, plot = tmp_path / "tuned.yaml", tmp_path / "front.png"
    args = ["policy", "tune", "--policy", str(base), "--data", str(data), "--trials", "2"]
    args += ["--step", "100", "--pick", "max-value", "--out", str(out), "--plot", str(plot)]
    args += ["--phases", "2"]
    run = CliRunner().invoke(app, args, env={"REOPTD_HOME": str(tmp_path / "home")})
    assert run.exit_code == 0, run.output
    assert "study policy-tune-tiny: 2 trials" in run.output or "1 failed" in run.output
    assert "held-out accuracy" in run.output and "periodic" in run.output
    assert "(each trial on 2 grids of checks)" in run.output
    assert plot.stat().st_size > 10_000 and load_policy(out).model == "tiny"
    # the study is in the daemon's own database, where a second run resumes it
    storage = f"sqlite:///{(tmp_path / 'home' / 'reoptd.db').resolve()}"
    assert len(optuna.load_study(study_name="policy-tune-tiny", storage=storage).trials) == 2


def test_help_explains_objectives_holdout_and_pick() -> None:
    run = CliRunner().invoke(app, ["policy", "tune", "--help"], env={"COLUMNS": "120"})
    assert run.exit_code == 0
    for words in ("Objectives", "Holdout", "Phases", "--pick", "knee", "max-retrains", "resume"):
        assert words in run.output
    # where trials run: the executor setting, --jobs
    for words in ("Where trials run", "REOPTD_EXECUTOR", "--jobs", "worker", "Ray"):
        assert words in run.output
