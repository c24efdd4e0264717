"""Backtest speed and value on a generated stream: served vs static vs periodic, cached vs not.

A 20,000-row, 8-feature classification stream whose feature distributions and concept change
two-thirds of the way through is replayed in 30-row steps with a drift-triggered policy. The
same backtest runs four times in one process:

* uncached (``cache=False``): everything computed, the reference figures;
* cold: a fresh ``BacktestCache`` (a policy search's first trial: nothing to reuse yet);
* cached: the same backtest again on that cache, replayed (every retrain, drift check,
  prediction and validation is a hit; the daemon's loop itself still runs every cycle);
* repeat: once more, now served whole from the kept report (``BacktestCache.reports``: an
  exact repeat, as a search re-suggesting a policy or a resumed study gets);
* neighbour: another policy (drift trigger 0.3 for 2 checks, cooldown 20m) on that cache, the
  typical trial of a search: the baselines and the first champion's work are hits.

Cached runs must report exactly what the uncached run does (``same=True``: every figure and
every step's decision). Prints each contender's metric and retrain count, the cache's hits, and
ends with one line:

    served=… static=… periodic=… retrains=… periodic_retrains=… seconds=… same=…
    uncached_seconds=… cold_seconds=… cached_seconds=… neighbour_seconds=… repeat_seconds=…
    speedup=… (uncached over cached) uncached_cpu_seconds=… cached_cpu_seconds=…
    neighbour_cpu_seconds=… cpu_speedup=… (the process's CPU time: steadier than wall time
    on a shared machine; the uncached run's retrains use several threads)

Usage: .venv/bin/python bench/backtest.py [--rows 20000] [--step 30] [--plot out.png]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from reoptd.backtest import BacktestCache, parse_span, plot_report, report_figures, run_backtest
from reoptd.policy import Policy, parse_policy

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


def _neighbour() -> Policy:
    return parse_policy(
        POLICY.replace("above: 0.2, for: 3", "above: 0.3, for: 2").replace("10m}", "20m}"),
        "bench/backtest.py neighbour policy",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--step", default="30")
    parser.add_argument("--plot", type=Path)
    args = parser.parse_args()
    policy = parse_policy(POLICY, "bench/backtest.py policy")
    options: dict[str, Any] = {
        "warmup": parse_span("1200", "--warmup"),
        "step": parse_span(args.step, "--step"),
        "label_delay": parse_span("60", "--label-delay"),
        "progress": True,
    }
    cache = BacktestCache(reports=False)
    runs: dict[str, tuple[dict[str, Any], float]] = {}
    cpu: dict[str, float] = {}  # this process's CPU seconds per run: less noisy on a busy machine
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "stream.parquet"
        stream(args.rows).to_parquet(data)
        for name, which, use in (
            ("uncached", policy, False),
            ("cold", policy, cache),
            ("cached", policy, cache),
            ("repeat", policy, cache),
            ("neighbour", _neighbour(), cache),
        ):
            if name == "cached":
                cache.reports = True  # this replay's report is kept for the repeat
            started, spent = time.perf_counter(), time.process_time()
            report = run_backtest(which, data, cache=use, **options)
            runs[name] = (report, time.perf_counter() - started)
            cpu[name] = time.process_time() - spent
    report, seconds = runs["uncached"]
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
        f"{report['rows_scored']} rows in {report['steps']} steps, {seconds:.1f}s uncached;"
        f" served keeps {served['value'] - base['static']['value']:+.4f} {metric} over static"
        f" with {served['retrains']}/{base['periodic']['retrains']} of periodic's retrains"
    )
    for name in ("cold", "cached", "repeat", "neighbour"):
        other, took = runs[name]
        hits = other["cache"]["hits"]
        print(
            f"{name:9} {took:6.1f}s (cpu {cpu[name]:6.1f}s)  x{seconds / took:5.1f}  hits {hits}"
            f"  misses {other['cache']['misses']}"
        )
    same = all(
        report_figures(runs[n][0]) == report_figures(report) for n in ("cold", "cached", "repeat")
    )
    neighbour = runs["neighbour"][0]
    print(
        f"neighbour policy: served {neighbour['served']['value']:.4f}"
        f" with {neighbour['served']['retrains']} retrains"
    )
    cached = runs["cached"][1]
    print(
        f"served={served['value']:.4f} static={base['static']['value']:.4f}"
        f" periodic={base['periodic']['value']:.4f} retrains={served['retrains']}"
        f" periodic_retrains={base['periodic']['retrains']} seconds={seconds:.1f}"
        f" same={same} uncached_seconds={seconds:.1f} cold_seconds={runs['cold'][1]:.1f}"
        f" cached_seconds={cached:.1f} neighbour_seconds={runs['neighbour'][1]:.1f}"
        f" repeat_seconds={runs['repeat'][1]:.2f}"
        f" speedup={seconds / cached:.1f} uncached_cpu_seconds={cpu['uncached']:.1f}"
        f" cached_cpu_seconds={cpu['cached']:.1f}"
        f" neighbour_cpu_seconds={cpu['neighbour']:.1f}"
        f" cpu_speedup={cpu['uncached'] / cpu['cached']:.1f}"
    )


if __name__ == "__main__":
    main()
