"""`reoptd policy tune`: a multi-objective search over a policy's knobs, each trial a real
backtest, the study in a real SQLite database, the front measured on held-out history."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from reoptd.backtest import parse_span, replay_history
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
from reoptd.policy_tune._knobs import base_params, candidate, to_yaml
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
def inline_runs() -> Iterator[None]:
    """Runs execute in the trial's thread, as `reoptd policy tune` sets it up."""
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
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert all("policy" in t.user_attrs and "search" in t.user_attrs for t in done)
    assert any(k.startswith("heldout:") for k in study.user_attrs)


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
    run = CliRunner().invoke(app, args, env={"REOPTD_HOME": str(tmp_path / "home")})
    assert run.exit_code == 0, run.output
    assert "study policy-tune-tiny: 2 trials" in run.output or "1 failed" in run.output
    assert "held-out accuracy" in run.output and "periodic" in run.output
    assert plot.stat().st_size > 10_000 and load_policy(out).model == "tiny"
    # the study is in the daemon's own database, where a second run resumes it
    storage = f"sqlite:///{(tmp_path / 'home' / 'reoptd.db').resolve()}"
    assert len(optuna.load_study(study_name="policy-tune-tiny", storage=storage).trials) == 2


def test_help_explains_objectives_holdout_and_pick() -> None:
    run = CliRunner().invoke(app, ["policy", "tune", "--help"], env={"COLUMNS": "120"})
    assert run.exit_code == 0
    for words in ("Objectives", "Holdout", "--pick", "knee", "max-retrains", "resume"):
        assert words in run.output
