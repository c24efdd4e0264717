"""What a candidate costs: its serialized size and its latency at the batch sizes that matter.

Latency is the time of one ``model.predict`` call on a batch of rows (preprocessing included:
that is what serving pays; an ONNX serving form is called as it serves, ``predict_arrays`` on
numpy arrays made from the DataFrame once, outside the timing), after a warm-up, on
``threads`` torch/BLAS threads, by default as the CPU time of the predicting thread (see
``latencies``). The same rows are used for every candidate, and candidates are timed in
interleaved rounds, so the numbers compare even while other processes load the machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from reoptd.models import Model, OnnxModel
from reoptd.models.torch import torch_threads

WARMUP = 5


@dataclass(frozen=True)
class Latency:
    batch_size: int
    p50_ms: float  # by the timer asked for (``cpu`` or ``wall``)
    p95_ms: float
    repetitions: int
    wall_p50_ms: float = 0.0  # elapsed time, whatever the timer
    wall_p95_ms: float = 0.0
    ci_low_ms: float | None = None  # 95% confidence interval of p50 (order statistics)
    ci_high_ms: float | None = None

    @property
    def interval(self) -> tuple[float, float]:
        """The 95% confidence interval of the median (the median itself when not measured)."""
        low = self.p50_ms if self.ci_low_ms is None else self.ci_low_ms
        high = self.p50_ms if self.ci_high_ms is None else self.ci_high_ms
        return low, high


def median_interval(samples: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """A distribution-free ~95% confidence interval of the median of ``samples``: the order
    statistics at ranks n/2 -+ z*sqrt(n)/2 (the binomial normal approximation)."""
    ordered = np.sort(samples)
    n = len(ordered)
    half = z * np.sqrt(n) / 2
    low = int(max(0, np.floor(n / 2 - half)))
    high = int(min(n - 1, np.ceil(n / 2 + half) - 1))
    return float(ordered[low]), float(ordered[high])


def size_bytes(model: Model) -> int:
    return len(model.to_bytes())


def batch_of(frame: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """``batch_size`` rows of ``frame`` (repeated when it has fewer)."""
    if len(frame) == 0:
        raise ValueError("no rows to measure latency on")
    index = np.arange(batch_size) % len(frame)
    return frame.iloc[index].reset_index(drop=True)


def serving_call(model: Model, batch: pd.DataFrame) -> Callable[[], Any]:
    """One prediction on ``batch`` as serving makes it: ``predict`` on the DataFrame, or for a
    form that serves numpy arrays (``predict_arrays``), on the arrays made from it here."""
    if isinstance(model, OnnxModel):
        numerical, categorical = model.arrays(batch)
        return lambda: model.predict_arrays(numerical, categorical)
    return lambda: model.predict(batch)


def latency(
    model: Model,
    frame: pd.DataFrame,
    batch_size: int,
    repetitions: int = 30,
    threads: int = 1,
    timer: str = "cpu",
) -> Latency:
    """p50/p95 milliseconds of ``model.predict`` on ``batch_size`` rows of ``frame``."""
    return latencies([model], frame, batch_size, repetitions, threads, timer)[0]


def latencies(
    models: list[Model],
    frame: pd.DataFrame,
    batch_size: int,
    repetitions: int = 30,
    threads: int = 1,
    timer: str = "cpu",
) -> list[Latency]:
    """``latency`` of each model, timed in interleaved rounds (one call of each model per
    round), so that load from other processes on a shared machine hits every model alike.

    ``timer="cpu"`` (one thread only) counts the CPU time of the predicting thread: the call's
    latency on a core of its own, which time slices given to other processes do not inflate.
    ``timer="wall"`` counts elapsed time. Elapsed time is recorded in both cases."""
    from threadpoolctl import threadpool_limits

    if timer == "cpu" and threads != 1:
        raise ValueError("the cpu timer measures one thread: use timer wall with threads > 1")
    batch = batch_of(frame, batch_size)
    calls = [serving_call(model, batch) for model in models]
    times = np.empty((len(models), repetitions))
    walls = np.empty((len(models), repetitions))
    with torch_threads(threads), threadpool_limits(limits=threads):
        for call in calls:
            for _ in range(WARMUP):
                call()
        for r in range(repetitions):
            for i, call in enumerate(calls):
                cpu, started = time.thread_time(), time.perf_counter()
                call()
                walls[i, r] = time.perf_counter() - started
                times[i, r] = time.thread_time() - cpu if timer == "cpu" else walls[i, r]
    out = []
    for row, wall in zip(times, walls, strict=True):
        p50, p95 = np.percentile(row * 1000, [50, 95])
        w50, w95 = np.percentile(wall * 1000, [50, 95])
        low, high = median_interval(row * 1000)
        out.append(
            Latency(
                batch_size,
                float(p50),
                float(p95),
                repetitions,
                float(w50),
                float(w95),
                low,
                high,
            )
        )
    return out
