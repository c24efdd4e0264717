"""Re-compression of a tuned torch MLP champion: every method and chain, measured, then chosen.

A generated tabular classification task (default 60k rows: 40 numerical and 4 categorical
features, a non-linear concept) trains a wide MLP champion, tuned by reoptd's own tune step (a
few Optuna trials over lr and dropout; `--trials 0` skips tuning). Then reoptd's compress
machinery builds every candidate the policy allows (distill, prune, magnitude, low_rank, quantize
or static_quantize, alone and chained), measures each on validation rows that neither the
champion nor any candidate trained on (accuracy, artifact bytes, p50/p95 latency of `predict` at
batch 1 and 256, preprocessing included, as the CPU time of one thread; elapsed times are
printed beside) and chooses by the policy's objective: latency at batch 256 within a 0.01
accuracy drop. Each candidate's accuracy is also measured on test rows neither the champion nor
the candidates saw.

Serving forms (`compress.serving: auto`): every candidate, the uncompressed model included, is
also exported to ONNX (`<candidate>@onnx`), checked against its Python form on the validation rows
(class probabilities within 1e-4) and timed under ONNX Runtime as it serves: on numpy arrays made
from the DataFrame once, outside the timing (no pandas per call). Python forms are timed on the
one-row DataFrame, preprocessing included, as today.

Batch 1 of a HistGradientBoosting champion: reoptd's sklearn pipeline (StandardScaler,
OneHotEncoder, HistGradientBoostingClassifier) trained on the same rows, compressed with
`serving: onnx`; sklearn's `predict_proba` on a one-row DataFrame vs the ONNX form's
`predict_proba_arrays` on that row's arrays (CPU time of one thread, interleaved rounds).

Prints one table row per candidate (size ratio = uncompressed bytes / candidate bytes, latency
ratio = uncompressed p50 / candidate p50: above 1 means smaller / faster; drop in accuracy on the
test rows) and ends with one line for the chosen plan:

    size_ratio=… latency_ratio=… batch=… metric_drop=… batch1_ratio=… hgb_batch1_ratio=…

(`metric_drop` in accuracy units: 0.01 is one point; `batch1_ratio`: the uncompressed torch
model's p50 at batch 1 served from Python / the chosen form's; `hgb_batch1_ratio`: sklearn's
predict_proba p50 on one row / the ONNX form's). Targets: size_ratio >= 4, latency_ratio >= 2 at
the policy's batch size, metric_drop <= 0.01, batch1_ratio >= 10, hgb_batch1_ratio >= 5.

Usage: .venv/bin/python bench/compression.py [--rows 60000] [--trials 4] [--batch 256]
       [--serving auto|python|onnx]
"""

from __future__ import annotations

import argparse
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from reoptd.models import OnnxModel, build_model
from reoptd.optimize._base import RunContext
from reoptd.optimize._tune import Tune
from reoptd.optimize.compress import compress_model
from reoptd.policy import parse_policy

NUMERICAL = [f"x{i:02d}" for i in range(40)]
CATEGORICAL = ["c1", "c2", "c3", "c4"]

POLICY = textwrap.dedent(
    """
    version: 1
    model: bench_mlp
    task: classification
    target: y
    timestamp: ts
    features:
      numerical: [{numerical}]
      categorical: [{categorical}]
    data: {{production: {{kind: files, path: unused}}}}
    pipeline: [retrain, tune, compress, validate]
    train:
      family: torch
      params: {{width: 512, depth: 3, dropout: 0.1, lr: 1.0e-3, epochs: {epochs}, patience: 3,
                batch_size: 256, seed: 0}}
      min_rows: 1000
    tune:
      trials: {trials}
      sampler: tpe
      pruner: median
      seed: 0
      space:
        lr: {{float: [3.0e-4, 3.0e-3], log: true}}
        dropout: {{float: [0.0, 0.3]}}
    promote: {{metric: accuracy}}
    compress:
      methods: [distill, prune, magnitude, low_rank, quantize, weight_quantize, static_quantize]
      max_metric_drop: 0.01
      objective: latency
      batch_size: {batch}
      batch_sizes: [1]
      threads: 1
      repetitions: {repetitions}
      distill: {{hidden: [128, 64], temperature: 4.0, alpha: 0.7, epochs: 40}}
      prune: {{amount: 0.5, finetune_epochs: 2}}
      low_rank: {{energy: 0.9}}
      static_quantize: {{calibration_rows: 1024}}
      serving: {serving}
      serving_tolerance: 1.0e-4
    """
)

HGB_POLICY = textwrap.dedent(
    """
    version: 1
    model: bench_hgb
    task: classification
    target: y
    timestamp: ts
    features:
      numerical: [{numerical}]
      categorical: [{categorical}]
    data: {{production: {{kind: files, path: unused}}}}
    pipeline: [retrain, compress, validate]
    train:
      estimator: sklearn.ensemble.HistGradientBoostingClassifier
      params: {{max_iter: 200, learning_rate: 0.1, random_state: 0}}
    promote: {{metric: accuracy}}
    compress:
      methods: [distill]
      distill: {{hidden: [64], epochs: 3}}
      max_metric_drop: 0.01
      batch_size: 1
      repetitions: {repetitions}
      serving: onnx
    """
)


def generate(rows: int, seed: int) -> pd.DataFrame:
    """40 numerical and 4 categorical features; the label depends on interactions, a few
    thresholds and a low-dimensional projection, with 8% label noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 40))
    mix = np.random.default_rng(0).normal(size=(40, 6)) / np.sqrt(40)
    z = x @ mix
    cats = {
        "c1": rng.choice(list("abcdef"), rows),
        "c2": rng.choice(["u", "v", "w"], rows),
        "c3": rng.choice([f"k{i}" for i in range(12)], rows),
        "c4": rng.choice(["yes", "no"], rows, p=[0.3, 0.7]),
    }
    effect = dict(zip("abcdef", [1.0, -1.0, 0.5, 0.0, -0.5, 0.8], strict=True))
    c1 = pd.Series(cats["c1"]).map(effect)
    logit = (
        1.5 * z[:, 0] * z[:, 1]
        + np.sin(2 * z[:, 2]) * 1.5
        - np.abs(z[:, 3]) * 1.2
        + (z[:, 4] > 0.3) * 1.2
        + 0.8 * x[:, 0] * (cats["c4"] == "yes")
        + c1.to_numpy()
        + 0.3 * z[:, 5] ** 2
        - 0.5
    )
    y = (1 / (1 + np.exp(-2.0 * logit)) > rng.random(rows)).astype(int)
    flip = rng.random(rows) < 0.08
    y[flip] = 1 - y[flip]
    frame = pd.DataFrame(x, columns=NUMERICAL).assign(**cats)
    frame["ts"] = pd.date_range("2026-01-01", periods=rows, freq="s", tz="UTC")
    frame["y"] = y
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60000, help="generated rows (>= 50k)")
    parser.add_argument("--trials", type=int, default=4, help="tuning trials for the champion")
    parser.add_argument("--epochs", type=int, default=12, help="max epochs of the champion")
    parser.add_argument("--batch", type=int, default=256, help="the policy's batch size")
    parser.add_argument("--repetitions", type=int, default=40, help="timed calls per batch size")
    parser.add_argument(
        "--serving", default="auto", choices=["auto", "python", "onnx"], help="compress.serving"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    policy = parse_policy(
        POLICY.format(
            numerical=", ".join(NUMERICAL),
            categorical=", ".join(CATEGORICAL),
            epochs=args.epochs,
            trials=max(1, args.trials),
            batch=args.batch,
            repetitions=args.repetitions,
            serving=args.serving,
        ),
        "bench/compression.py",
    )
    frame = generate(args.rows, seed=1)
    n_test = len(frame) // 5
    train, test = frame.iloc[: len(frame) - n_test], frame.iloc[len(frame) - n_test :]
    # the champion and the candidates learn from fit rows; candidates are scored on validation
    # rows nobody trained on (the daemon uses its holdout), and the drop reported is on test rows
    n_valid = len(train) // 5
    fit_rows, valid_rows = train.iloc[: len(train) - n_valid], train.iloc[len(train) - n_valid :]
    print(
        f"task: {len(frame)} rows ({len(fit_rows)} fit, {len(valid_rows)} validation,"
        f" {len(test)} test), {len(NUMERICAL)} numerical + {len(CATEGORICAL)} categorical"
        f" features; positives {frame['y'].mean():.1%}"
    )
    params = dict(policy.train.params)
    if args.trials > 0:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = RunContext(
                policy=policy,
                now=datetime.now(UTC),
                train=fit_rows,
                holdout=valid_rows.iloc[:0],
                champion=None,
                storage=f"sqlite:///{Path(tmp) / 'studies.db'}",
                study_prefix="reoptd.bench",
            )
            record = Tune().run(ctx)
        params.update(record["best_params"])
        print(
            f"champion tuned: {record['trials']} trials, best validation accuracy"
            f" {record['best_value']:.4f} with {record['best_params']}"
        )
    t0 = time.perf_counter()
    champion = build_model(policy, params).fit(fit_rows, fit_rows["y"])
    print(
        f"champion: MLP {champion.params['hidden']}, {champion.best_epoch} epochs,"
        f" trained in {time.perf_counter() - t0:.0f}s"
    )

    def accuracy(model) -> float:
        return float((model.predict(test) == test["y"].to_numpy()).mean())

    t0 = time.perf_counter()
    plan = compress_model(champion, fit_rows, valid_rows, policy)
    seconds = time.perf_counter() - t0
    print(f"{len(plan.candidates)} candidates built and measured in {seconds:.0f}s")
    base = plan.candidates[0]
    base_test = accuracy(base.model)
    batch = policy.compress.batch_size
    head = (
        f"{'candidate':52} {'bytes':>8} {'size x':>7} {'p50@1 ms':>9} {'lat x@1':>8}"
        f" {f'p50@{batch} ms':>11} {f'lat x@{batch}':>9} {f'wall x@{batch}':>10}"
        f" {'val acc':>8} {'test drop':>9}"
    )
    print(head)
    print("-" * len(head))
    drops = {}
    for c in plan.candidates:
        drops[c.name] = base_test - accuracy(c.model)
        mark = " <- chosen" if c is plan.chosen else ""
        print(
            f"{c.name:52} {c.size_bytes:>8} {base.size_bytes / c.size_bytes:>7.2f}"
            f" {c.latency[1].p50_ms:>9.3f} {base.latency[1].p50_ms / c.latency[1].p50_ms:>8.2f}"
            f" {c.latency[batch].p50_ms:>11.3f}"
            f" {base.latency[batch].p50_ms / c.latency[batch].p50_ms:>9.2f}"
            f" {base.latency[batch].wall_p50_ms / c.latency[batch].wall_p50_ms:>10.2f}"
            f" {c.metric:>8.4f} {drops[c.name]:>+9.4f}{mark}"
        )
    chosen = plan.chosen
    print(f"selection: {plan.selection.reason}")
    refused: dict[str, int] = {}
    for export in plan.exports:
        if not export["exported"]:
            refused[export["reason"]] = refused.get(export["reason"], 0) + 1
    for reason, count in refused.items():
        print(f"no ONNX form for {count} candidates: {reason}")
    hgb_ratio = hgb_batch1(fit_rows, valid_rows, test, args.repetitions)
    print(
        f"uncompressed test accuracy {base_test:.4f}; {time.perf_counter() - started:.0f}s total;"
        f" target: size_ratio >= 4, latency_ratio >= 2 at batch {batch}, metric_drop <= 0.01,"
        " batch1_ratio >= 10, hgb_batch1_ratio >= 5"
    )
    print(
        f"size_ratio={base.size_bytes / chosen.size_bytes:.2f}"
        f" latency_ratio={base.latency[batch].p50_ms / chosen.latency[batch].p50_ms:.2f}"
        f" batch={batch} metric_drop={drops[chosen.name]:.4f}"
        f" batch1_ratio={base.latency[1].p50_ms / chosen.latency[1].p50_ms:.2f}"
        f" hgb_batch1_ratio={hgb_ratio:.2f}"
    )


def hgb_batch1(
    fit_rows: pd.DataFrame, valid_rows: pd.DataFrame, test: pd.DataFrame, repetitions: int
) -> float:
    """A HistGradientBoosting champion compressed with `serving: onnx`; prints the batch-1
    latencies of sklearn's predict_proba and of the champion's own ONNX form
    (`uncompressed@onnx`) and returns the first / the second."""
    policy = parse_policy(
        HGB_POLICY.format(
            numerical=", ".join(NUMERICAL),
            categorical=", ".join(CATEGORICAL),
            repetitions=max(5, repetitions),
        ),
        "bench/compression.py (hgb)",
    )
    t0 = time.perf_counter()
    champion = build_model(policy).fit(fit_rows, fit_rows["y"])
    plan = compress_model(champion, fit_rows, valid_rows, policy)
    form = next(c for c in plan.candidates if c.name == "uncompressed@onnx")
    onnx = form.model
    assert isinstance(onnx, OnnxModel)
    row = test.iloc[:1][champion.features]
    numerical, categorical = onnx.arrays(row)
    calls = {
        "sklearn predict_proba, 1-row DataFrame": lambda: champion.pipeline.predict_proba(row),
        "its ONNX form, predict_proba_arrays": lambda: onnx.predict_proba_arrays(
            numerical, categorical
        ),
    }
    times = {name: [] for name in calls}
    with threadpool_limits(limits=1):
        for call in calls.values():
            for _ in range(5):
                call()
        for _ in range(max(repetitions, 200)):
            for name, call in calls.items():
                cpu = time.thread_time()
                call()
                times[name].append((time.thread_time() - cpu) * 1000)
    p50 = {name: float(np.median(t)) for name, t in times.items()}
    sk_acc = float((champion.predict(test) == test["y"].to_numpy()).mean())
    onnx_acc = float((onnx.predict(test) == test["y"].to_numpy()).mean())
    print(
        f"HistGradientBoosting champion: test accuracy {sk_acc:.4f} (sklearn) vs {onnx_acc:.4f}"
        f" (its ONNX form, outputs within {form.max_difference:.2g}),"
        f" {len(champion.to_bytes())} vs {form.size_bytes} bytes,"
        f" in {time.perf_counter() - t0:.0f}s; serving: onnx chose {plan.chosen.name}"
    )
    for name, value in p50.items():
        print(f"  batch 1 p50 {value:8.4f} ms  {name}")
    first, second = p50.values()
    return first / second


if __name__ == "__main__":
    main()
