"""Warm-started re-tuning vs grid, random and cold TPE, on two periods with a shift between them.

Period 1 is tuned once (TPE). In period 2 the same search space is tuned four ways at equal
budgets (the grid's size): grid, random, cold TPE, and TPE warm-started from period 1 the way the
daemon does it (the champion's parameters first, then period 1's best trials, and period 1's trials
handed to the sampler). All use reoptd's own tune step and score trials on the newest 20% of the
period's rows. Ends with one line:

    grid_best=… random_best=… tpe_best=… warm_best=… warm_trials_to_grid_best=… grid_trials=…

(best values in accuracy points; warm_trials_to_grid_best counts the warm study's trials until it
is within 0.3 points of grid's best). Target: at most 25% of grid's trials.

Usage: .venv/bin/python bench/tuning.py [--rows 4000]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from reoptd.optimize._base import RunContext
from reoptd.optimize._tune import Tune, is_own
from reoptd.policy import parse_policy

POLICY = textwrap.dedent(
    """
    version: 1
    model: {model}
    task: classification
    target: y
    timestamp: ts
    features:
      numerical: [x1, x2, x3, x4, x5, x6, x7, x8]
      categorical: [c1, c2]
    data: {{production: {{kind: files, path: unused}}}}
    pipeline: [retrain, tune, validate]
    train:
      estimator: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 120, random_state: 0}}
    promote: {{metric: accuracy}}
    tune:
      sampler: {sampler}
      trials: {trials}
      pruner: none
      warm_start: {warm}
      seed_history: false
      seed: 1
      space:
        learning_rate: {{choice: [0.02, 0.05, 0.1, 0.2]}}
        max_leaf_nodes: {{choice: [4, 8, 16, 32]}}
        min_samples_leaf: {{choice: [5, 20, 80]}}
        l2_regularization: {{choice: [0.0, 1.0]}}
    """
)
GRID = 4 * 4 * 3 * 2


def period(rows: int, shift: float, seed: int) -> pd.DataFrame:
    """Interactions and thresholds a boosted model needs depth for; `shift` moves the
    distributions and tilts the concept."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 8)) + shift * np.array([1, 0.5, 0, 0, -0.5, 0, 0, 0])
    c1 = rng.choice(["a", "b", "c", "d"], rows)
    c2 = rng.choice(["u", "v"], rows, p=[0.7 - 0.2 * shift, 0.3 + 0.2 * shift])
    logit = (
        1.2 * x[:, 0] * x[:, 1]
        - np.abs(x[:, 2]) * 1.5
        + np.sin(2 * x[:, 3]) * (1 + shift)
        + (x[:, 4] > 0.5) * 1.3
        + np.where(c1 == "a", 1.0, np.where(c1 == "d", -1.0, 0.0))
        + 0.5 * (c2 == "v")
        + 0.6
    )
    y = (rng.random(rows) < 1 / (1 + np.exp(-1.8 * logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 9)])
    ts = pd.date_range("2026-01-01", periods=rows, freq="min", tz="UTC")
    return frame.assign(c1=c1, c2=c2, y=y, ts=ts)


def tune(storage: str, model: str, sampler: str, frame: pd.DataFrame, champion: dict) -> list:
    policy = parse_policy(
        POLICY.format(model=model, sampler=sampler, trials=GRID, warm=str(bool(champion)).lower()),
        f"bench {model}",
    )
    ctx = RunContext(
        policy=policy,
        now=datetime.now(UTC),
        train=frame,
        holdout=frame.iloc[:0],
        champion=None,
        storage=storage,
        study_prefix=f"reoptd.{model}.{sampler}",
        champion_params=champion,
    )
    record = Tune().run(ctx)
    study = optuna.load_study(study_name=record["study"], storage=storage)
    trials = [t for t in study.get_trials() if is_own(t)]
    return [100 * t.value for t in sorted(trials, key=lambda t: t.number)], record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{Path(tmp) / 'studies.db'}"
        started = time.perf_counter()
        first, record = tune(storage, "warm", "tpe", period(args.rows, 0.0, 1), {})
        champion = record["best_params"]
        print(f"period 1: TPE best {max(first):.2f} in {len(first)} trials; champion {champion}")
        second = period(args.rows, 1.0, 2)
        curves = {}
        for label, model, sampler, warm in (
            ("grid", "grid", "grid", {}),
            ("random", "random", "random", {}),
            ("tpe", "cold", "tpe", {}),
            ("warm", "warm", "tpe", champion),
        ):
            values, _ = tune(storage, model, sampler, second, warm)
            curves[label] = np.maximum.accumulate(values)
            print(
                f"period 2: {label:6} best {curves[label][-1]:.2f} after {len(values)} trials;"
                f" best after 10: {curves[label][min(9, len(values) - 1)]:.2f}"
            )
        grid_best = curves["grid"][-1]
        reached = np.nonzero(curves["warm"] >= grid_best - 0.3)[0]
        to_grid = int(reached[0]) + 1 if len(reached) else -1
        print(
            f"warm TPE reaches grid's best within 0.3 points after {to_grid} of {GRID} trials"
            f" ({to_grid / GRID:.0%}; target <= 25%); {time.perf_counter() - started:.0f}s total"
        )
        print(
            f"grid_best={grid_best:.2f} random_best={curves['random'][-1]:.2f}"
            f" tpe_best={curves['tpe'][-1]:.2f} warm_best={curves['warm'][-1]:.2f}"
            f" warm_trials_to_grid_best={to_grid} grid_trials={GRID}"
        )


if __name__ == "__main__":
    main()
