"""The built-in demo stream: a seeded telecom-churn problem that drifts at a known time.

Rows arrive every ``ROW_INTERVAL`` of simulated time. At ``drift_at`` a competitor's price cut
lands: monthly charges and support calls go up, more customers sit on month-to-month contracts
(covariate drift) and customers become far more price-sensitive while tenure protects less
(concept drift), so a model trained before the drift loses quality after it. Payment method and
tenure keep their distributions, so not every feature drifts.

Every row is a pure function of (seed, row index): any window can be read in any order and gives
the same rows, which is what lets the live daemon, the tests and backtests share this stream.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd

from reoptd.clock import utc

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ROW_INTERVAL = timedelta(seconds=10)
#: where the simulated clock of a demo run starts: a day of history lies before it
START = EPOCH + timedelta(days=1)
DRIFT_AT = START + timedelta(hours=3)
LABEL_DELAY = timedelta(minutes=30)
BLOCK = 1024

NUMERICAL = ["tenure", "monthly_charges", "support_calls"]
CATEGORICAL = ["contract", "payment_method"]
TARGET = "churned"
TIMESTAMP = "ts"
ID = "request_id"

_CONTRACTS = np.array(["month-to-month", "one-year", "two-year"])
_PAYMENTS = np.array(["electronic-check", "mailed-check", "bank-transfer", "credit-card"])


class DemoSource:
    """Reads the demo stream between two instants; labels arrive ``label_delay`` after a row."""

    name = "demo"

    def __init__(
        self,
        seed: int = 7,
        *,
        drift_at: datetime = DRIFT_AT,
        label_delay: timedelta = LABEL_DELAY,
    ) -> None:
        self.seed = seed
        self.drift_at = utc(drift_at)
        self.label_delay = label_delay

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= ts < end``; labels newer than ``end - label_delay`` are NaN."""
        step = ROW_INTERVAL.total_seconds()
        first = max(0, int(np.ceil((utc(start) - EPOCH).total_seconds() / step)))
        stop = max(first, int(np.ceil((utc(end) - EPOCH).total_seconds() / step)))
        if stop <= first:
            return _block(self.seed, 0, self.drift_at).iloc[:0].copy()
        parts = [
            _block(self.seed, b, self.drift_at)
            for b in range(first // BLOCK, (stop - 1) // BLOCK + 1)
        ]
        frame = pd.concat(parts, ignore_index=True)
        index = frame[ID].to_numpy()
        frame = frame[(index >= first) & (index < stop)].reset_index(drop=True)
        unlabelled = frame[TIMESTAMP] > utc(end) - self.label_delay
        frame.loc[unlabelled, TARGET] = np.nan
        return frame


@lru_cache(maxsize=256)
def _block(seed: int, block: int, drift_at: datetime) -> pd.DataFrame:
    rng = np.random.default_rng([seed, block])
    index = np.arange(block * BLOCK, (block + 1) * BLOCK)
    ts = pd.to_datetime(EPOCH) + pd.to_timedelta(index * ROW_INTERVAL.total_seconds(), unit="s")
    after = np.asarray(ts >= pd.Timestamp(drift_at))
    n = len(index)

    tenure = np.clip(rng.gamma(2.0, 12.0, n), 1, 72).round()
    charges = np.clip(rng.normal(np.where(after, 88.0, 65.0), 18.0), 18, 130).round(2)
    calls = rng.poisson(np.where(after, 3.0, 1.2))
    contract = np.where(
        after,
        _pick(rng, _CONTRACTS, [0.75, 0.15, 0.10], n),
        _pick(rng, _CONTRACTS, [0.50, 0.28, 0.22], n),
    )
    payment = _pick(rng, _PAYMENTS, [0.35, 0.20, 0.25, 0.20], n)

    m2m = contract == "month-to-month"
    electronic = payment == "electronic-check"
    before_logit = (
        -0.6 + 1.4 * m2m - 0.05 * tenure + 0.01 * (charges - 65) + 0.35 * calls + 0.6 * electronic
    )
    # After the competitor's price cut: price dominates, tenure barely protects, calls matter less.
    after_logit = -1.2 + 0.4 * m2m - 0.005 * tenure + 0.12 * (charges - 88) + 0.05 * calls
    logit = np.where(after, after_logit, before_logit)
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float)
    return pd.DataFrame(
        {
            ID: index,
            TIMESTAMP: ts,
            "tenure": tenure,
            "monthly_charges": charges,
            "support_calls": calls.astype(float),
            "contract": contract,
            "payment_method": payment,
            TARGET: churned,
        }
    )


def _pick(rng: np.random.Generator, values: np.ndarray, p: list[float], n: int) -> np.ndarray:
    return values[rng.choice(len(values), size=n, p=p)]
