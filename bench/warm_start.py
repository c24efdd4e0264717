"""Warm-started vs from-scratch challengers over 10 re-optimizations of a gradually drifting stream.

A generated stream drifts gradually: feature means creep, the concept's coefficients rotate, and
a new category appears halfway. A champion is trained on period 0; then each of 10
re-optimizations runs reoptd's own retrain step with `train.warm_start: auto` on the next
period's rows (the newest 20% held out, as the daemon does): one challenger fine-tuned from the
champion, one trained from scratch, both timed and scored on the holdout; the one `auto` keeps
becomes the next champion. This runs for the torch MLP (the issue's target) and for a
HistGradientBoosting model (warm start adds 30% more boosting iterations on the new window).
Ends with one line (torch figures first, then HistGradientBoosting's with the prefix hgb_):

    warm_seconds=… scratch_seconds=… warm_metric=… scratch_metric=… warm_chosen=… hgb_…

(seconds: summed training time of the 10 challengers, on one thread; metric: mean holdout
accuracy; warm_chosen: how many times `auto` kept the warm one).
Target: warm start at least 2x less training time at an equal or better metric.

Usage: .venv/bin/python bench/warm_start.py [--rows 8000] [--runs 10]
"""

from __future__ import annotations

import argparse
import textwrap
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from reoptd.monitor import Champion
from reoptd.optimize._base import RunContext
from reoptd.optimize._retrain import Retrain
from reoptd.policy import Policy, parse_policy

POLICY = textwrap.dedent(
    """
    version: 1
    model: warm_{name}
    task: classification
    target: y
    timestamp: ts
    features:
      numerical: [x1, x2, x3, x4, x5, x6]
      categorical: [c1]
    data: {{production: {{kind: files, path: unused}}}}
    pipeline: [retrain, validate]
    train:
      {train}
      warm_start: auto
    promote: {{metric: accuracy, holdout: 20%}}
    """
)
TORCH = "family: torch\n  params: {hidden: [128, 64], epochs: 60, patience: 5, batch_size: 256}"
HGB = (
    "estimator: sklearn.ensemble.HistGradientBoostingClassifier\n"
    "  params: {max_iter: 200, learning_rate: 0.1, early_stopping: false, random_state: 0}"
)


def period(index: int, rows: int) -> pd.DataFrame:
    """Rows of period ``index``: a little further along the drift than the one before."""
    rng = np.random.default_rng(100 + index)
    t = index / 10  # 0 .. 1 over the re-optimizations
    x = rng.normal(size=(rows, 6)) + t * np.array([0.8, -0.5, 0.3, 0.0, 0.0, 0.4])
    categories = ["a", "b", "c"] + (["d"] if index >= 5 else [])
    c1 = rng.choice(categories, rows)
    angle = t * np.pi / 3  # the concept turns by 60 degrees over the stream
    first = 1.5 * x[:, 0] * x[:, 1] - np.abs(x[:, 2]) + 0.8 * np.sin(2 * x[:, 3])
    second = 1.2 * x[:, 4] - 0.8 * x[:, 5] ** 2 + 0.7
    effect = pd.Series(c1).map({"a": 0.8, "b": 0.0, "c": -0.8, "d": 1.5}).to_numpy()
    logit = np.cos(angle) * first + np.sin(angle) * second + effect + 0.3
    y = (rng.random(rows) < 1 / (1 + np.exp(-2.0 * logit))).astype(int)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(1, 7)])
    start = pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=index)
    ts = pd.date_range(start, periods=rows, freq="10s")
    return frame.assign(c1=c1, y=y, ts=ts)


def chain(policy: Policy, rows: int, runs: int) -> list[dict]:
    """Champion on period 0, then ``runs`` re-optimizations; each one's retrain record."""
    first = period(0, rows)
    champion_model = None
    records = []
    for index in range(runs + 1):
        frame = first if index == 0 else period(index, rows)
        cut = len(frame) - round(len(frame) * policy.promote.holdout)
        champion = None if champion_model is None else Champion(index, champion_model, frame[:0])
        ctx = RunContext(
            policy=policy,
            now=datetime.now(UTC),
            train=frame.iloc[:cut],
            holdout=frame.iloc[cut:],
            champion=champion,
        )
        record = Retrain().run(ctx)
        champion_model = ctx.challenger
        if index == 0:
            continue
        records.append(record)
        line = "  ".join(
            f"{name} {c['seconds']:6.2f}s acc {c.get('accuracy', float('nan')):.4f}"
            for name, c in record["candidates"].items()
        )
        print(f"  run {index:2}: {line}  -> {record['chosen']}", flush=True)
    return records


def summary(records: list[dict]) -> dict[str, float]:
    warm = [r["candidates"]["warm"] for r in records if "warm" in r["candidates"]]
    scratch = [r["candidates"]["scratch"] for r in records]
    return {
        "warm_seconds": sum(c["seconds"] for c in warm),
        "scratch_seconds": sum(c["seconds"] for c in scratch),
        "warm_metric": float(np.mean([c["accuracy"] for c in warm])),
        "scratch_metric": float(np.mean([c["accuracy"] for c in scratch])),
        "warm_chosen": sum(r["chosen"] == "warm" for r in records),
        "warm_runs": len(warm),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    results = {}
    for name, train in (("torch", TORCH), ("hgb", HGB)):
        policy = parse_policy(POLICY.format(name=name, train=train), f"bench {name}")
        print(f"{name}: {args.runs} re-optimizations, {args.rows} rows each (20% holdout)")
        with threadpool_limits(limits=1):  # as the torch MLP trains: one thread, less noise
            results[name] = s = summary(chain(policy, args.rows, args.runs))
        ratio = s["scratch_seconds"] / max(s["warm_seconds"], 1e-9)
        gain = s["warm_metric"] - s["scratch_metric"]
        print(
            f"{name}: warm {s['warm_seconds']:.1f}s, mean accuracy {s['warm_metric']:.4f};"
            f" from scratch {s['scratch_seconds']:.1f}s, {s['scratch_metric']:.4f}:"
            f" warm {ratio:.1f}x less training time, {gain:+.4f} accuracy;"
            f" auto kept warm in {s['warm_chosen']} of {args.runs}"
        )
        verdict = "met" if ratio >= 2 and gain >= 0 else "NOT met"
        print(f"{name}: target (>= 2x less time at an equal or better metric) {verdict}")
    print(f"{time.perf_counter() - started:.0f}s total")
    t, h = results["torch"], results["hgb"]
    print(
        f"warm_seconds={t['warm_seconds']:.2f} scratch_seconds={t['scratch_seconds']:.2f}"
        f" warm_metric={t['warm_metric']:.4f} scratch_metric={t['scratch_metric']:.4f}"
        f" warm_chosen={t['warm_chosen']}"
        f" hgb_warm_seconds={h['warm_seconds']:.2f} hgb_scratch_seconds={h['scratch_seconds']:.2f}"
        f" hgb_warm_metric={h['warm_metric']:.4f} hgb_scratch_metric={h['scratch_metric']:.4f}"
        f" hgb_warm_chosen={h['warm_chosen']}"
    )


if __name__ == "__main__":
    main()
