"""The backtest's picture: the metric over time for served, static and periodic, promotions
marked, drift share beneath."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def plot_report(report: dict[str, Any], out: Path, smooth: int | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = pd.DataFrame(report["timeline"])
    when = pd.to_datetime(timeline["start"], utc=True)
    steps = len(timeline)
    smooth = smooth or max(1, steps // 40)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    metric = report["metric"]
    styles = {"served": ("#1f77b4", 2.2), "static": ("#7f7f7f", 1.4), "periodic": ("#ff7f0e", 1.4)}
    for name, (color, width) in styles.items():
        series = pd.to_numeric(timeline[name], errors="coerce")
        series = series.rolling(smooth, min_periods=1).mean()
        total = report["served"] if name == "served" else report["baselines"][name]
        value = "n/a" if total["value"] is None else f"{total['value']:.3f}"
        label = f"{name}: {metric} {value}, {total['retrains']} retrains"
        top.plot(when, series, color=color, linewidth=width, label=label)
    for at in when[timeline["promoted"].astype(bool)]:
        top.axvline(at, color="#2ca02c", linestyle="--", linewidth=1)
    if timeline["promoted"].any():
        top.plot([], [], color="#2ca02c", linestyle="--", label="promotion")
    top.set_ylabel(f"{metric} per step" + (f" ({smooth}-step mean)" if smooth > 1 else ""))
    model = report["policy"]["model"]
    top.set_title(f"Backtest of {model}: {report['rows_scored']} rows in {steps} steps")
    top.legend(loc="lower left", fontsize=9)
    top.grid(alpha=0.3)

    drift = pd.to_numeric(
        timeline["drift_share"], errors="coerce"
    ).ffill()  # holds until next check
    bottom.fill_between(when, drift.fillna(0), step="post", color="#d62728", alpha=0.35)
    bottom.plot(when, drift, drawstyle="steps-post", color="#d62728", linewidth=1)
    for trigger in report["policy"].get("triggers", []):
        spec = trigger.get("drift_share")
        if spec:
            bottom.axhline(spec["above"], color="black", linestyle=":", linewidth=1)
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("drift share")
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
