"""Synthetic data for the example policies that do not read the demo stream, so every example in
policies/ runs on data the repository produces:

    python docs/example_data.py demand demand.csv      # policies/demand-regressor.yaml
    python docs/example_data.py fraud fraud.parquet    # policies/fraud-shadow.yaml
    reoptd optimize --policy policies/demand-regressor.yaml --data demand.csv

Seeded: the same command writes the same rows.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd


def demand(seed: int = 0, stores: int = 20, days: int = 200) -> pd.DataFrame:
    """Daily units sold per store: price, promotion, weather and last weeks' sales drive it."""
    rng = np.random.default_rng(seed)
    day = pd.date_range("2026-01-01", periods=days, freq="D", tz="UTC")
    frame = pd.DataFrame(
        {
            "day": np.repeat(day, stores),
            "store": np.tile([f"s{i:02d}" for i in range(stores)], days),
        }
    )
    n = len(frame)
    level = rng.uniform(40, 120, stores)[np.tile(np.arange(stores), days)]
    frame["weekday"] = frame["day"].dt.day_name().str[:3].str.lower()
    frame["price"] = rng.uniform(2.0, 6.0, n).round(2)
    frame["promo_depth"] = np.where(rng.random(n) < 0.2, rng.uniform(0.05, 0.4, n), 0.0).round(2)
    frame["temperature"] = (
        15 + 10 * np.sin(np.arange(n) / stores / 58) + rng.normal(0, 3, n)
    ).round(1)
    weekend = frame["weekday"].isin(["sat", "sun"]).to_numpy()
    units = (
        level * (1 + 0.8 * frame["promo_depth"]) - 6 * frame["price"] + 0.4 * frame["temperature"]
    )
    units = units + 15 * weekend + rng.normal(0, 5, n)
    frame["units_sold"] = units.clip(lower=0).round()
    by_store = frame.groupby("store")["units_sold"]
    frame["lag_7"] = by_store.shift(7)
    frame["lag_28"] = by_store.shift(28)
    return frame.dropna().reset_index(drop=True)


def fraud(seed: int = 0, rows: int = 30_000, days: int = 7) -> pd.DataFrame:
    """Card transactions, about 3% fraud: large amounts far from home on young accounts."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    seconds = np.sort(rng.uniform(0, days * 86400, rows))
    frame = pd.DataFrame(
        {
            "event_time": start + pd.to_timedelta(seconds, unit="s"),
            "amount": rng.lognormal(3.5, 1.0, rows).round(2),
            "account_age_days": rng.integers(0, 3000, rows),
            "txn_last_hour": rng.poisson(1.0, rows),
            "distance_km": rng.exponential(20, rows).round(1),
            "merchant_category": rng.choice(["grocery", "travel", "electronics", "fuel"], rows),
            "channel": rng.choice(["web", "pos", "app"], rows, p=[0.4, 0.4, 0.2]),
            "country": rng.choice(["DE", "FR", "NL", "US"], rows, p=[0.5, 0.2, 0.2, 0.1]),
        }
    )
    risk = (
        -4.5
        + 0.6 * np.log1p(frame["amount"]) / 3
        + 1.2 * (frame["account_age_days"] < 60)
        + 0.4 * frame["txn_last_hour"]
        + 0.02 * frame["distance_km"].clip(upper=100)
        + 0.8 * (frame["merchant_category"] == "electronics")
    )
    frame["is_fraud"] = (rng.random(rows) < 1 / (1 + np.exp(-risk))).astype(int)
    return frame


WRITERS = {"demand": demand, "fraud": fraud}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in WRITERS:
        print(__doc__, file=sys.stderr)
        return 2
    kind, out = argv[0], Path(argv[1])
    frame = WRITERS[kind]()
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    print(f"{out}: {len(frame)} {kind} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
