"""Cached backtests give the very report of an uncached one; the cache keys on content."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from reoptd.backtest import BacktestCache, parse_span, report_figures, run_backtest
from reoptd.backtest._cache import HistoryRows, retrain_key
from reoptd.data import demo
from reoptd.models import build_model
from reoptd.policy import Policy, load_policy
from reoptd.settings import DEMO_POLICY

OPTIONS: dict[str, Any] = {
    "warmup": parse_span("3h", "--warmup"),
    "step": parse_span("30m", "--step"),
    "label_delay": parse_span("30m", "--label-delay"),
    "progress": False,
}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twelve hours of the demo stream, all labels present; drift three hours after warm-up."""
    source = demo.DemoSource(label_delay=timedelta(0))
    frame = source.read(demo.START - timedelta(hours=3), demo.START + timedelta(hours=9))
    path = tmp_path_factory.mktemp("history") / "history.parquet"
    frame.to_parquet(path, index=False)
    return path


def test_cached_runs_report_exactly_what_an_uncached_run_does(
    history: Path, tmp_path: Path
) -> None:
    policy = load_policy(DEMO_POLICY)
    uncached = run_backtest(policy, history, cache=False, **OPTIONS)
    assert "cache" not in uncached

    directory = tmp_path / "cache"
    first = BacktestCache(directory, reports=False)  # replay every time: test each entry
    cold = run_backtest(policy, history, cache=first, **OPTIONS)
    # another process on the same directory: the retrains come from disk, the rest is redone
    from_disk = run_backtest(
        policy, history, cache=BacktestCache(directory, reports=False), **OPTIONS
    )
    warm = run_backtest(policy, history, cache=first, **OPTIONS)

    expected = report_figures(uncached)
    assert expected["served"]["promotions"] >= 1  # the runs retrain, promote and drift
    assert any(e["drift_share"] for e in expected["timeline"])
    for report in (cold, from_disk, warm):
        assert report_figures(report) == expected

    def count(report: dict[str, Any], table: str, kind: str) -> int:
        return int(report["cache"][table].get(kind, 0))

    steps, retrains = uncached["steps"], uncached["served"]["retrains"]
    assert count(cold, "misses", "retrain") == steps + retrains + 1  # periodic, runs, warm-up
    assert count(from_disk, "hits", "retrain") == steps + retrains + 1
    assert count(from_disk, "misses", "retrain") == 0
    assert count(from_disk, "misses", "drift") > 0  # drift statistics live in memory only
    assert not any(warm["cache"]["misses"].values())
    assert count(warm, "hits", "drift") == count(cold, "misses", "drift") > 0
    assert count(warm, "hits", "validate") == retrains + 1
    # the loop's label-free estimates, data quality checks, backfill re-scorings, every
    # contender's step score and the periodic baseline's training rows (a cold run hits some
    # already: static and served share the warm-up model's steps)
    for kind in ("estimate", "quality", "evaluate", "step", "periodic"):
        assert count(cold, "misses", kind) > 0, kind
        assert count(warm, "hits", kind) == count(cold, "hits", kind) + count(cold, "misses", kind)
    assert count(warm, "hits", "periodic") == steps  # found without reading the rows
    assert len(list(directory.rglob("*.model"))) == steps + retrains + 1


def test_another_policy_reuses_the_baselines_and_still_matches_its_uncached_run(
    history: Path, tmp_path: Path
) -> None:
    policy = load_policy(DEMO_POLICY)
    cache = BacktestCache(tmp_path)
    run_backtest(policy, history, cache=cache, **OPTIONS)
    stricter = policy.model_copy(update={"triggers": policy.triggers[:1]})
    shared = run_backtest(stricter, history, cache=cache, policy_file="a.yaml", **OPTIONS)
    alone = run_backtest(stricter, history, cache=False, policy_file="a.yaml", **OPTIONS)
    assert report_figures(shared) == report_figures(alone)
    assert shared["cache"]["hits"]["retrain"] >= shared["steps"]  # the periodic baseline
    assert shared["cache"]["misses"]["report"] == 1

    # the same backtest again, here or in another process: the kept report, not a replay
    for again in (cache, BacktestCache(tmp_path)):
        repeat = run_backtest(stricter, history, cache=again, policy_file="b.yaml", **OPTIONS)
        assert repeat["cache"] == {"hits": {"report": 1}, "misses": {}}
        assert repeat["policy_file"] == "b.yaml"
        assert report_figures(repeat) == {**report_figures(shared), "policy_file": "b.yaml"}


def _rows(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b"], n),
            "y": rng.integers(0, 2, n),
        }
    )


@pytest.fixture
def policy() -> Policy:
    from reoptd.policy import parse_policy

    return parse_policy(
        """
        version: 1
        model: m
        task: classification
        target: y
        timestamp: ts
        features: {numerical: [x], categorical: [c]}
        data: {production: {kind: files, path: unused}}
        train:
          estimator: sklearn.ensemble.RandomForestClassifier
          params: {n_estimators: 5, random_state: 0}
        promote: {metric: accuracy}
        """,
        "test policy",
    )


def test_the_retrain_key_is_the_rows_params_and_seed(policy: Policy) -> None:
    rows = _rows()
    key = retrain_key(policy, rows)
    assert retrain_key(policy, rows.iloc[::-1].iloc[::-1]) == key  # same content, new object
    assert retrain_key(policy, rows.set_index(rows.index + 7)) == key  # the index is no input
    changed = rows.copy()
    changed.loc[5, "x"] += 1e-9
    assert retrain_key(policy, changed) != key
    reseeded = policy.model_copy(
        update={"train": policy.train.model_copy(update={"params": {"n_estimators": 5}})}
    )
    assert retrain_key(reseeded, rows) != key
    as_float = rows.assign(y=rows["y"].astype(float))  # same numbers, another type
    assert retrain_key(policy, as_float) != key


def test_a_torn_cache_file_is_retrained_and_rewritten(policy: Policy, tmp_path: Path) -> None:
    rows = _rows()

    def fit() -> Any:
        return build_model(policy).fit(rows, rows["y"])

    key, model, hit = BacktestCache(tmp_path).retrained(policy, rows, fit)
    assert not hit
    path = next(tmp_path.rglob(f"{key}.model"))
    path.write_bytes(b"half a mod")
    _, again, hit = BacktestCache(tmp_path).retrained(policy, rows, fit)
    assert not hit and path.read_bytes() == again.to_bytes()
    _, loaded, hit = BacktestCache(tmp_path).retrained(policy, rows, fit)
    assert hit
    assert (loaded.predict(rows) == model.predict(rows)).all()


def test_history_rows_are_found_by_time_then_proved_by_value() -> None:
    frame = _rows()
    rows = HistoryRows(frame, ["x", "c"], "ts")
    window = frame.iloc[40:90].reset_index(drop=True)
    assert (rows.positions(window) == np.arange(40, 90)).all()
    labelled = window[window["y"] == 1]  # a subset, as labelled() leaves it
    assert (rows.positions(labelled) == labelled.index.to_numpy() + 40).all()
    no_time = window.drop(columns="ts")  # by the features' hashes
    assert (frame["x"].to_numpy()[rows.positions(no_time)] == window["x"].to_numpy()).all()
    edited = window.copy()
    edited.loc[3, "x"] = 99.0
    assert rows.positions(edited) is None
    assert rows.positions(edited.drop(columns="ts")) is None
    assert rows.positions(window.assign(c=window["c"].astype("category"))) is None


def test_many_small_entries_do_not_push_models_out() -> None:
    cache = BacktestCache(items=2)
    cache.lookup("retrain", "a", lambda: "model a")
    for i in range(20):  # one per step: far more than ``items``
        cache.lookup("step", str(i), lambda i=i: i)
    assert cache.lookup("retrain", "a", lambda: "retrained") == "model a"
    assert cache.stats.hits["retrain"] == 1
    assert cache.lookup("step", "19", lambda: -1) == 19  # small ones are bounded by their own


def test_a_window_s_quality_is_computed_once_and_keyed_on_what_it_reports(
    policy: Policy,
) -> None:
    from reoptd.backtest._cache import CachedChampion

    reference = _rows(200)
    cache = BacktestCache()
    champion = CachedChampion(version=1, model=None, reference=reference, cache=cache)  # type: ignore[arg-type]
    window = _rows(100, seed=1)
    first = champion.quality(policy).check(window)
    again = champion.quality(policy).check(window.copy())
    assert again == first and again is not first  # a hit, and the caller's own copy
    assert cache.stats.hits["quality"] == 1 and cache.stats.misses["quality"] == 1
    extra = champion.quality(policy).check(window.assign(note="x"))  # an unknown column
    assert extra.extra_columns == ["note"] and first.extra_columns == []
    shifted = window.assign(x=window["x"] + 100)  # outside the reference's range
    assert champion.quality(policy).check(shifted).out_of_range_share["x"] == 1.0
    assert cache.stats.misses["quality"] == 3
