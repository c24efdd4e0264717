"""Backtest speed and value on a generated stream: served vs static vs periodic, one run.

A 20,000-row, 8-feature classification stream whose feature distributions and concept change
two-thirds of the way through is replayed in 30-row steps with a drift-triggered policy (the
issue's target: under 5 minutes on a 2-core machine). Prints each contender's metric and retrain
count, the seconds spent in monitoring vs re-optimizing, and ends with one line:

    served=… static=… periodic=… retrains=… periodic_retrains=… seconds=…

Usage: .venv/bin/python bench/backtest.py [--rows 20000] [--step 30] [--plot out.png]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd

from reoptd.backtest import parse_span, plot_report, run_backtest
from reoptd.policy import parse_policy

POLICY = textwrap.dedent(
    """
    version: 1
    model: bench_stream
    task: classification
    target: y
    timestamp: ts            # absent from the file: row order is time, one row per second
    features:
      numerical: [x1, x2, x3, x4, x5, x6]
      categorical: [c1, c2]
    data: {production: {kind: files, path: unused}}
    monitor:
      every: 30s
      window: 10m
      min_rows: 100
      drift: {method: wasserstein, threshold: 0.2, cat_method: jensenshannon, cat_threshold: 0.1}
    triggers:
      - drift_share: {above: 0.2, for: 3}
    guards: {cooldown: 10m}
    train:
      estimator: sklearn.ensemble.HistGradientBoostingClassifier
      params: {max_iter: 60, learning_rate: 0.1, max_depth: 3, random_state: 0}
      window: 20m
      min_rows: 300
    promote: {metric: accuracy, min_improvement: 0.005, holdout: 25%}
    """
)


def stream(rows: int, seed: int = 0) -> pd.DataFrame:
    """Eight features; at 2/3 of the rows x1..x3 shift and the concept turns around."""
    rng = np.random.default_rng(seed)
    after = np.arange(rows) >= rows * 2 // 3
    x = rng.normal(size=(rows, 6))
    x[:, :3] += np.where(after, 1.0, 0.0)[:, None]
    c1 = rng.choice(["a", "b", "c"], rows, p=[0.5, 0.3, 0.2])
    c1 = np.where(after & (rng.random(rows) < 0.4), "c", c1)
    c2 = rng.choice(["u", "v"], rows)
    before = 1.5 * x[:, 0] - x[:, 1] + 0.8 * x[:, 3] + (c1 == "a") - 0.5
    later = -1.2 * x[:, 0] + 1.4 * x[:, 2] - 0.8 * x[:, 4] + (c1 == "c") - 0.5
    logit = np.where(after, later, before)
    y = (rng.random(rows) < 1 / (1 + np.exp(-2 * logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 7)])
    return frame.assign(c1=c1, c2=c2, y=y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--step", default="30")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    policy = parse_policy(POLICY, "bench/backtest.py policy")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "stream.parquet"
        stream(args.rows).to_parquet(data)
        started = time.perf_counter()
        report = run_backtest(
            policy,
            data,
            warmup=parse_span("1200", "--warmup"),
            step=parse_span(args.step, "--step"),
            label_delay=parse_span("60", "--label-delay"),
            progress=True,
        )
        seconds = time.perf_counter() - started
    if args.plot:
        plot_report(report, args.plot)
    served, base = report["served"], report["baselines"]
    metric = report["metric"]
    for name, part in (
        ("served", served),
        ("static", base["static"]),
        ("periodic", base["periodic"]),
    ):
        print(
            f"{name:9} {metric} {part['value']:.4f}  retrains {part['retrains']:4d}"
            f"  optimize {part['optimize_seconds']:7.1f}s"
        )
    print(
        f"{report['rows_scored']} rows in {report['steps']} steps, {seconds:.1f}s total;"
        f" served keeps {served['value'] - base['static']['value']:+.4f} {metric} over static"
        f" with {served['retrains']}/{base['periodic']['retrains']} of periodic's retrains"
    )
    print(
        f"served={served['value']:.4f} static={base['static']['value']:.4f}"
        f" periodic={base['periodic']['value']:.4f} retrains={served['retrains']}"
        f" periodic_retrains={base['periodic']['retrains']} seconds={seconds:.1f}"
    )


if __name__ == "__main__":
    main()
