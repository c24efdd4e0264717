"""Seeded synthetic streams with one known change, for the label, estimation and drift tests.

Every stream is a binary classification problem on two numerical features and one categorical
one, with a true P(y | x) the tests know. ``change`` picks what happens at ``change_at``:

- ``none``: nothing.
- ``covariate``: P(x) moves towards the decision boundary, P(y | x) stays: accuracy falls, and a
  calibrated model's confidence falls with it.
- ``label``: the positive rate jumps (P(y) shifts): target drift.
- ``correlation``: x1 and x2 become strongly correlated; each one's own distribution is unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from reoptd.policy import Policy

START = datetime(2026, 5, 1, tzinfo=UTC)


def stream(
    change: str,
    *,
    change_at: datetime,
    start: datetime = START,
    hours: float = 12,
    every: timedelta = timedelta(seconds=5),
    seed: int = 0,
) -> pd.DataFrame:
    """Rows every ``every`` from ``start`` for ``hours``, with ids 0, 1, ..."""
    n = int(timedelta(hours=hours) / every)
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp(start) + pd.to_timedelta(np.arange(n) * every.total_seconds(), unit="s")
    after = np.asarray(ts >= pd.Timestamp(change_at))
    x1 = rng.normal(0.0, 1.5, n)
    x2 = rng.normal(0.0, 1.5, n)
    segment = np.where(rng.random(n) < 0.4, "b", "a")
    if change == "covariate":
        x1 = np.where(after, rng.normal(0.2, 0.45, n), x1)
        x2 = np.where(after, rng.normal(0.0, 0.45, n), x2)
    elif change == "correlation":
        rho = 0.95
        x2 = np.where(after, rho * x1 + np.sqrt(1 - rho**2) * x2, x2)
    logit = 2.0 * x1 - 1.0 * x2 + 0.8 * (segment == "b") - 0.4
    if change == "label":
        logit = np.where(after, logit + 2.5, logit)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return pd.DataFrame(
        {"request_id": np.arange(n), "ts": ts, "x1": x1, "x2": x2, "segment": segment, "y": y}
    )


def policy(**changes: Any) -> Policy:
    """A classifier policy on the stream's columns; ``changes`` are merged into its blocks."""
    data: dict[str, Any] = {
        "version": 1,
        "model": "stream",
        "task": "classification",
        "target": "y",
        "timestamp": "ts",
        "id": "request_id",
        "features": {"numerical": ["x1", "x2"], "categorical": ["segment"]},
        "data": {"production": {"kind": "demo"}},
        "monitor": {"every": "30m", "window": "2h", "min_rows": 50},
        "triggers": [],
        "train": {
            "estimator": "sklearn.linear_model.LogisticRegression",
            "window": "4h",
            "min_rows": 200,
        },
        "promote": {"metric": "accuracy", "holdout": "25%"},
    }
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return Policy.model_validate(data)


def label_times(frame: pd.DataFrame, delay: timedelta, never_after: datetime | None = None):
    """When each row's label becomes visible (for ``ReplaySource``): ``delay`` after the row, or
    never for rows at or after ``never_after``."""
    ts = frame["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    at = ts + np.timedelta64(int(delay.total_seconds() * 1e9), "ns")
    if never_after is not None:
        cut = np.datetime64(pd.Timestamp(never_after).tz_convert("UTC").tz_localize(None))
        at = np.where(ts >= cut, np.datetime64("2262-01-01"), at)
    return at
