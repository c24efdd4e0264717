"""Policy search on a generated stream with recurring and abrupt drifts: is the knee worth it?

A classification stream alternates between two concepts, each with its own feature
distribution (A, B, A, B, A, B, A: abrupt switches, recurring regimes). ``reoptd policy tune``'s
search (``tune_policy``) runs 60 backtest trials of a drift-triggered base policy on the older
70% of the rows (four switches) and measures the Pareto front, the base policy and the baselines
on the newest 30% (two switches, 21 steps of 200 rows: 10% of periodic's retrains is 2, one per
switch; with one switch in 18 held-out steps, as before, the target could be met by a single
well-timed retrain).
Target: the knee policy's held-out metric within 0.5 point of periodic (retrain before every
step) with at most 10% of its retrains, the whole search within 15 minutes on 2 cores. Prints
the front and ends with one line:

    knee_heldout=... periodic_heldout=... knee_retrains=... periodic_retrains=... seconds=...

Trials run where ``reoptd policy tune`` runs them: ``REOPTD_EXECUTOR`` (default ``local``, worker
processes, ``--jobs`` of them, default one per usable core; ``--jobs 1`` one at a time in this
process).

Usage: .venv/bin/python bench/policy_tune.py [--rows 14000] [--trials 60] [--jobs N]
       [--plot out.png] [--seed 0] [--phases 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reoptd.backtest import parse_span
from reoptd.policy_tune import parse_pick, pick, plot_front, table, tune_policy, write_policy

POLICY = textwrap.dedent(
    """
    version: 1
    model: bench_regimes
    task: classification
    target: y
    timestamp: ts            # absent from the file: row order is time, one row per second
    features:
      numerical: [x1, x2, x3, x4, x5, x6]
      categorical: [c1, c2]
    data: {production: {kind: files, path: unused}}
    monitor:
      every: 200s
      window: 10m
      min_rows: 100
      estimate: false
      backfill: {within: null}
      drift: {method: wasserstein, threshold: 0.2, cat_method: jensenshannon, cat_threshold: 0.1}
    triggers:
      - drift_share: {above: 0.2, for: 3}
    guards: {cooldown: 10m}
    train:
      estimator: sklearn.linear_model.LogisticRegression
      params: {max_iter: 300}
      window: 20m
      min_rows: 150
    promote: {metric: accuracy, min_improvement: 0.005, holdout: 25%}
    """
)
#: where each regime starts, as a share of the rows: A, B, then each recurs; the held-out 30%
#: starts in A and switches to B at 75% and back to A at 87%
SWITCHES = (0.0, 0.15, 0.3, 0.45, 0.6, 0.75, 0.87)


def stream(rows: int, seed: int = 0) -> pd.DataFrame:
    """Eight features; in regime B every numerical feature shifts by 0.8, category c grows, and
    the concept changes."""
    rng = np.random.default_rng(seed)
    at = np.arange(rows) / rows
    regime = np.searchsorted(np.array(SWITCHES), at, side="right") - 1
    b = regime % 2 == 1
    x = rng.normal(size=(rows, 6))
    x += np.where(b, 0.8, 0.0)[:, None]
    c1 = rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])
    c1 = np.where(b & (rng.random(rows) < 0.4), "c", c1)
    c2 = rng.choice(["u", "v"], rows)
    concept_a = 1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 3] + (c1 == "a") - 0.5
    concept_b = -1.2 * x[:, 0] + 1.4 * x[:, 2] - 0.8 * x[:, 4] + (c1 == "c") - 0.5
    logit = np.where(b, concept_b, concept_a)
    y = (rng.random(rows) < 1 / (1 + np.exp(-2 * logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 7)])
    return frame.assign(c1=c1, c2=c2, y=y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=14_000)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument(
        "--jobs", type=int, help="trials at once (default: the executor's, REOPTD_EXECUTOR)"
    )
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--out", type=Path, help="write the knee policy here")
    parser.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    parser.add_argument("--phases", type=int, default=4, help="grids of checks per trial")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.yaml"
        base.write_text(POLICY)
        data = Path(tmp) / "stream.parquet"
        stream(args.rows).to_parquet(data)
        started = time.perf_counter()
        result = tune_policy(
            base,
            data,
            storage=f"sqlite:///{Path(tmp) / 'reoptd.db'}",
            trials=args.trials,
            holdout=0.3,
            warmup=0.2,
            step=parse_span("200", "--step"),
            label_delay=parse_span("60", "--label-delay"),
            jobs=args.jobs,
            seed=args.seed,
            phases=args.phases,
        )
        seconds = time.perf_counter() - started
        choice = parse_pick("knee")
        knee = pick(result, choice)
        if args.out:
            write_policy(result, knee, choice, args.out, Path("bench/policy_tune.py"), data)
    print(table(result, knee))
    if args.plot:
        plot_front(result, knee, args.plot)
    assert knee.heldout is not None and knee.heldout.value is not None
    periodic, base_scores = result.periodic, result.base.heldout
    assert periodic.value is not None and base_scores is not None
    gap = (periodic.value - knee.heldout.value) * 100
    share = knee.heldout.retrains / max(1, periodic.retrains)
    print(
        f"{result.trials} trials ({result.failed} failed, {result.where}), front of"
        f" {len(result.front)}, {seconds:.0f}s, load {os.getloadavg()[0]:.1f}; held out: base"
        f" {base_scores.value:.4f}"
        f" with {base_scores.retrains} retrains; knee {gap:+.2f} points below periodic with"
        f" {share:.0%} of its retrains"
    )
    own = knee.heldout_periodic
    if own is not None and own.value is not None:
        print(
            f"periodic on the knee's own train.window ({knee.summary.split('window ')[1]}):"
            f" {own.value:.4f} with {own.retrains} retrains;"
            f" knee {(own.value - knee.heldout.value) * 100:+.2f} points below it"
        )
    print(
        f"knee_heldout={knee.heldout.value:.4f} periodic_heldout={periodic.value:.4f}"
        f" knee_retrains={knee.heldout.retrains} periodic_retrains={periodic.retrains}"
        f" seconds={seconds:.0f}"
    )


if __name__ == "__main__":
    main()
