"""Performance estimated without labels against the realised value, per chunk of 1,000 rows (#19).

Three generated tasks (binary, 4-class, regression), each with a champion (a scikit-learn
HistGradientBoosting model of the policy, fitted on ``--train`` rows) and a labelled holdout
(``--holdout`` rows the champion never saw, as promotion stores with a version). Then two
streams of ``--chunks`` chunks of ``--rows`` rows each:

* covariate shift: the inputs move step by step (P(label | inputs) stays), so the model gets
  worse or better and the estimate should follow;
* concept shift: the inputs stay and P(label | inputs) changes step by step, which no estimate
  without labels can see (the labelled metric catches it once labels land).

Every chunk is estimated by the daemon's own code (``Champion.estimator`` and the check's
``estimate``: the same calls ``reoptd check``, the daemon and the backtest make), and compared
with the realised metric on the chunk's labels (``reoptd.monitor.evaluate``). A last chunk far
outside the holdout's range must be declared unreliable.

Prints, per task, one line:

    task=binary|multiclass|regression metric=… mae_covariate=… mae_concept=… band_coverage=…
    band_width=… [f1_mae_covariate=…] unreliable_flagged=true|false target_met=true|false

(``band_width``: the covariate stream's mean band width; for regression, the MAE errors and
the band width as a share of the realised MAE), a plot of estimate, band and
realised value per chunk (``--plot``, default docs/img/estimation.png), and one closing line:

    chunks=… rows=… binary_mae=… multiclass_mae=… regression_mae_share=… coverage_min=…
    targets_met=true|false

Targets (#19): under covariate shift the mean absolute error of the estimated accuracy and f1
at most 0.02 (binary, multiclass), of the estimated MAE at most 10% of the realised MAE; the 90%
band holds the realised value in at least 85% of chunks.

Usage: .venv/bin/python bench/estimation.py [--chunks 100] [--rows 1000] [--train 20000]
       [--holdout 5000] [--plot docs/img/estimation.png]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reoptd.models import build_model
from reoptd.monitor import Champion, evaluate
from reoptd.monitor._check import estimate
from reoptd.policy import Policy

FEATURES = ["x0", "x1", "x2", "x3", "x4"]
CONFIDENCE = 0.9


def policy(task: str, metric: str, estimator: str) -> Policy:
    return Policy.model_validate(
        {
            "version": 1,
            "model": f"bench_{task}",
            "task": "classification" if task != "regression" else "regression",
            "target": "y",
            "timestamp": "ts",
            "features": {"numerical": FEATURES, "categorical": ["segment"]},
            "data": {"production": {"kind": "demo"}},
            # (a fixed random_state: the champion, and so every figure, is the same run to run)
            "train": {"estimator": estimator, "params": {"max_iter": 150, "random_state": 0}},
            "promote": {"metric": metric},
            "triggers": [
                {"estimated_metric": {"name": metric, "confidence": CONFIDENCE, "below": 0.0}}
                if task != "regression"
                else {"estimated_metric": {"name": metric, "confidence": CONFIDENCE, "above": 1e9}}
            ],
        }
    )


def inputs(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Five numerical features and one categorical; ``shift`` moves x0 and x1 and the segment mix
    (the covariate shift), as a share of the full shift."""
    x = rng.normal(0.0, 1.0, (n, len(FEATURES)))
    x[:, 0] += 1.2 * shift
    x[:, 1] = x[:, 1] * (1 - 0.4 * shift) - 0.6 * shift
    frame = pd.DataFrame(x, columns=FEATURES)
    frame["segment"] = np.where(rng.random(n) < 0.3 + 0.4 * shift, "b", "a")
    frame["ts"] = pd.Timestamp("2026-01-01", tz="UTC")
    return frame


def labels(task: str, rng: np.random.Generator, frame: pd.DataFrame, concept: float) -> np.ndarray:
    """The label of each row from the true P(label | inputs); ``concept`` (0 to 1) changes it."""
    x = frame[FEATURES].to_numpy()
    b = (frame["segment"] == "b").to_numpy(dtype=float)
    if task == "binary":
        logit = 1.6 * x[:, 0] - 1.0 * x[:, 1] + 0.8 * np.tanh(2 * x[:, 2]) + 0.6 * b - 0.3
        logit = logit - concept * (2.4 * x[:, 0] - 1.0 * x[:, 3])  # x0 stops mattering, x3 starts
        return (rng.random(len(x)) < 1 / (1 + np.exp(-logit))).astype(int)
    if task == "multiclass":
        w = np.array([[1.4, 0.0, 0.5, 0.0], [0.0, 1.2, -0.6, 0.4], [-1.0, 0.6, 0.8, -0.5]])
        logits = np.column_stack([x[:, :3] @ w[:, k] for k in range(4)])
        logits[:, 3] += 0.7 * b + 0.5 * np.sin(2 * x[:, 3])
        logits[:, 0] -= concept * 2.0 * x[:, 0]  # class 0 turns away from x0
        logits[:, 1] += concept * 1.5 * x[:, 4]
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        u = rng.random((len(x), 1))
        return np.minimum((u > p.cumsum(axis=1)).sum(axis=1), 3)
    mean = 2.0 * x[:, 0] + np.sin(2 * x[:, 1]) + 0.5 * x[:, 2] ** 2 + 0.8 * b
    mean = mean + concept * 1.5 * x[:, 3]  # a new effect the model never learnt
    noise = (0.3 + 0.5 * np.abs(x[:, 0])) * rng.standard_normal(len(x))  # worse far from 0
    return mean + noise


TASKS = {
    "binary": ("accuracy", "sklearn.ensemble.HistGradientBoostingClassifier"),
    "multiclass": ("accuracy", "sklearn.ensemble.HistGradientBoostingClassifier"),
    "regression": ("mae", "sklearn.ensemble.HistGradientBoostingRegressor"),
}


@dataclass
class Series:
    """Estimate, band and realised value per chunk of one stream."""

    estimate: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    realised: list[float] = field(default_factory=list)
    f1_gap: list[float] = field(default_factory=list)

    def mae(self) -> float:
        return float(np.mean(np.abs(np.subtract(self.estimate, self.realised))))

    def width(self) -> float:
        return float(np.mean(np.subtract(self.upper, self.lower)))

    def coverage(self) -> float:
        r, lo, hi = (np.asarray(v) for v in (self.realised, self.lower, self.upper))
        return float(np.mean((lo <= r) & (r <= hi)))


def run_task(task: str, args: argparse.Namespace, seed: int) -> dict:
    metric, estimator = TASKS[task]
    p = policy(task, metric, estimator)
    rng = np.random.default_rng(seed)
    train = inputs(rng, args.train)
    train["y"] = labels(task, rng, train, 0.0)
    holdout = inputs(rng, args.holdout)
    holdout["y"] = labels(task, rng, holdout, 0.0)
    started = time.perf_counter()
    model = build_model(p).fit(train, train["y"])
    champion = Champion(1, model, train, calibration=holdout)
    assert champion.estimator(p) is not None, task
    built = time.perf_counter() - started
    names = [metric, "f1"] if task != "regression" else [metric]
    streams: dict[str, Series] = {}
    seconds = 0.0
    for kind in ("covariate", "concept"):
        series = streams[kind] = Series()
        for i in range(args.chunks):
            step = i / max(args.chunks - 1, 1)
            chunk = inputs(rng, args.rows, step if kind == "covariate" else 0.0)
            chunk["y"] = labels(task, rng, chunk, step if kind == "concept" else 0.0)
            unlabelled = chunk.drop(columns="y")
            t0 = time.perf_counter()
            got = estimate(p, champion, unlabelled)
            seconds += time.perf_counter() - t0
            assert got is not None and got.reliable, (task, kind, i)
            realised = evaluate(model, chunk, "y", names)
            series.estimate.append(got.values[metric])
            series.lower.append(got.lower[metric])
            series.upper.append(got.upper[metric])
            series.realised.append(realised[metric])
            if "f1" in names:
                series.f1_gap.append(got.values["f1"] - realised["f1"])
    far = inputs(rng, args.rows)
    far[["x0", "x1"]] += 8.0  # far outside anything the holdout saw
    unreliable = estimate(p, champion, far)
    flagged = unreliable is not None and not unreliable.reliable and not unreliable.values
    cov, con = streams["covariate"], streams["concept"]
    out = {
        "task": task,
        "metric": metric,
        "streams": streams,
        "built_s": built,
        "estimate_ms": 1000 * seconds / (2 * args.chunks),
        "coverage": cov.coverage(),
        "flagged": flagged,
    }
    if task == "regression":
        scale = float(np.mean(cov.realised))
        out["mae_covariate"] = cov.mae() / scale
        out["mae_concept"] = con.mae() / float(np.mean(con.realised))
        out["width"] = cov.width() / scale
        out["met"] = out["mae_covariate"] <= 0.10
    else:
        out["mae_covariate"] = cov.mae()
        out["mae_concept"] = con.mae()
        out["width"] = cov.width()
        out["f1_mae"] = float(np.mean(np.abs(cov.f1_gap)))
        out["met"] = out["mae_covariate"] <= 0.02 and out["f1_mae"] <= 0.02
    out["met"] = out["met"] and out["coverage"] >= 0.85 and flagged
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 2, figsize=(11, 3.0 * len(results)), squeeze=False)
    for row, result in zip(axes, results, strict=True):
        for ax, kind in zip(row, ("covariate", "concept"), strict=True):
            s = result["streams"][kind]
            x = np.arange(1, len(s.estimate) + 1)
            ax.fill_between(x, s.lower, s.upper, alpha=0.25, label=f"{CONFIDENCE:.0%} band")
            ax.plot(x, s.estimate, label="estimated (no labels)")
            ax.plot(x, s.realised, "k.", label="realised (labels)")
            ax.set_title(f"{result['task']}: {kind} shift", fontsize=10)
            ax.set_ylabel(result["metric"])
            ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("chunk of rows (the shift grows to the right)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("reoptd: metric estimated without labels vs realised, per chunk")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100, help="chunks per stream")
    parser.add_argument("--rows", type=int, default=1000, help="rows per chunk")
    parser.add_argument("--train", type=int, default=20000, help="champion's training rows")
    parser.add_argument("--holdout", type=int, default=5000, help="holdout rows")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/estimation.png"))
    args = parser.parse_args()
    results = []
    for seed, task in enumerate(TASKS):
        result = run_task(task, args, seed)
        results.append(result)
        extra = f" f1_mae_covariate={result['f1_mae']:.4f}" if "f1_mae" in result else ""
        print(
            f"task={task} metric={result['metric']} mae_covariate={result['mae_covariate']:.4f}"
            f" mae_concept={result['mae_concept']:.4f} band_coverage={result['coverage']:.3f}"
            f" band_width={result['width']:.4f}"
            f"{extra} unreliable_flagged={str(result['flagged']).lower()}"
            f" estimator_built_s={result['built_s']:.1f} estimate_ms={result['estimate_ms']:.0f}"
            f" target_met={str(result['met']).lower()}",
            flush=True,
        )
    plot(results, args.plot)
    print(f"plot: {args.plot}")
    by = {r["task"]: r for r in results}
    print(
        f"chunks={args.chunks} rows={args.rows} binary_mae={by['binary']['mae_covariate']:.4f}"
        f" multiclass_mae={by['multiclass']['mae_covariate']:.4f}"
        f" regression_mae_share={by['regression']['mae_covariate']:.4f}"
        f" coverage_min={min(r['coverage'] for r in results):.3f}"
        f" targets_met={str(all(r['met'] for r in results)).lower()}"
    )


if __name__ == "__main__":
    main()
