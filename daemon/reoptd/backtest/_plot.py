"""The backtest's picture: the metric over time for served, static and periodic, promotions
marked with the version they made champion, rejected retrains as crosses, drift share and its
trigger threshold beneath; the legend beside the plot, never over the data."""

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
        2, 1, figsize=(13, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
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
    served_raw = pd.to_numeric(timeline["served"], errors="coerce")
    served: pd.Series = served_raw.rolling(smooth, min_periods=1).mean()
    promoted = timeline["promoted"].astype(bool)
    versions = timeline.get("challenger_version", pd.Series([None] * steps))
    for index in timeline.index[promoted]:
        at = when[index]
        top.axvline(at, color="#2ca02c", linestyle="--", linewidth=1)
        version = versions[index]
        if version is not None and not pd.isna(version):
            top.annotate(
                f"v{int(version)}",
                (at, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                color="#2ca02c",
                fontsize=9,
                fontweight="bold",
            )
    if promoted.any():
        top.plot([], [], color="#2ca02c", linestyle="--", label="promotion (new champion version)")
    outcomes = timeline.get("run_outcome", pd.Series([None] * steps))
    rejected = outcomes.notna() & (outcomes != "promoted")
    if rejected.any():
        top.scatter(
            when[rejected],
            served[rejected],
            marker="x",
            s=60,
            color="#d62728",
            zorder=5,
            label="retrain not promoted (" + ", ".join(sorted(set(outcomes[rejected]))) + ")",
        )
    top.set_ylabel(f"{metric} per step" + (f" ({smooth}-step mean)" if smooth > 1 else ""))
    model = report["policy"]["model"]
    top.set_title(f"Backtest of {model}: {report['rows_scored']} rows in {steps} steps")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, borderaxespad=0)
    top.grid(alpha=0.3)

    drift = pd.to_numeric(
        timeline["drift_share"], errors="coerce"
    ).ffill()  # holds until next check
    bottom.fill_between(when, drift.fillna(0), step="post", color="#d62728", alpha=0.35)
    bottom.plot(when, drift, drawstyle="steps-post", color="#d62728", linewidth=1)
    for trigger in report["policy"].get("triggers", []):
        spec = trigger.get("drift_share")
        if spec:
            bottom.axhline(
                spec["above"],
                color="black",
                linestyle=":",
                linewidth=1,
                label=f"drift_share trigger ({spec['above']:g})",
            )
    bottom.set_ylim(0, 1)
    bottom.set_ylabel("drift share")
    bottom.set_xlabel("time (UTC, the data's own clock)")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, borderaxespad=0)
    bottom.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
