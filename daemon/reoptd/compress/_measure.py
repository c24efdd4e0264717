"""What a candidate costs: its serialized size and its latency at the batch sizes that matter.

Latency is the time of one ``model.predict`` call on a batch of rows (preprocessing included:
that is what serving pays), after a warm-up, on ``threads`` torch/BLAS threads. The same rows
are used for every candidate, and candidates are timed in interleaved rounds, so the numbers
compare even while other processes load the machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from reoptd.models import Model

WARMUP = 5


@dataclass(frozen=True)
class Latency:
    batch_size: int
    p50_ms: float
    p95_ms: float
    repetitions: int


def size_bytes(model: Model) -> int:
    return len(model.to_bytes())


def batch_of(frame: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    """``batch_size`` rows of ``frame`` (repeated when it has fewer)."""
    if len(frame) == 0:
        raise ValueError("no rows to measure latency on")
    index = np.arange(batch_size) % len(frame)
    return frame.iloc[index].reset_index(drop=True)


def latency(
    model: Model, frame: pd.DataFrame, batch_size: int, repetitions: int = 30, threads: int = 1
) -> Latency:
    """p50/p95 milliseconds of ``model.predict`` on ``batch_size`` rows of ``frame``."""
    return latencies([model], frame, batch_size, repetitions, threads)[0]


def latencies(
    models: list[Model],
    frame: pd.DataFrame,
    batch_size: int,
    repetitions: int = 30,
    threads: int = 1,
) -> list[Latency]:
    """``latency`` of each model, timed in interleaved rounds (one call of each model per
    round), so that load from other processes on a shared machine hits every model alike."""
    from threadpoolctl import threadpool_limits

    batch = batch_of(frame, batch_size)
    times = np.empty((len(models), repetitions))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            for model in models:
                for _ in range(WARMUP):
                    model.predict(batch)
            for r in range(repetitions):
                for i, model in enumerate(models):
                    started = time.perf_counter()
                    model.predict(batch)
                    times[i, r] = time.perf_counter() - started
    finally:
        torch.set_num_threads(before)
    out = []
    for row in times:
        p50, p95 = np.percentile(row * 1000, [50, 95])
        out.append(Latency(batch_size, float(p50), float(p95), repetitions))
    return out
