"""The front's picture: value against cost, on the search part (every trial, the front joined)
and on the held-out part (the front, the base policy, periodic and static, the pick circled)."""

from __future__ import annotations

from pathlib import Path

from reoptd.policy_tune._study import Candidate, TuneResult


def plot_front(result: TuneResult, chosen: Candidate | None, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = result.metric
    unit = "retrains" if result.cost == "retrains" else "optimize seconds"
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2))
    if result.points:
        values, costs = zip(*result.points, strict=True)
        left.scatter(costs, values, s=14, color="#bbbbbb", label=f"{result.trials} trials")
    front = [c for c in result.front if c.search.value is not None]
    left.plot(
        [c.search.cost(result.cost) for c in front],
        [c.search.value for c in front],
        "o-",
        color="#1f77b4",
        label="Pareto front",
    )
    if result.base.search.value is not None:
        left.scatter(
            [result.base.search.cost(result.cost)],
            [result.base.search.value],
            marker="s",
            s=60,
            color="#2ca02c",
            label="base policy",
            zorder=3,
        )
    left.set_title(
        f"search: older {1 - result.holdout:.0%} of the rows ({result.search_rows}),"
        f" mean of {result.grids()}"
    )

    shown = [c for c in result.front if c.heldout is not None and c.heldout.value is not None]
    right.plot(
        [c.heldout.cost(result.cost) for c in shown if c.heldout],
        [c.heldout.value for c in shown if c.heldout],
        "o",
        color="#1f77b4",
        label="front policies",
    )
    for name, scores, marker, color in (
        ("base policy", result.base.heldout, "s", "#2ca02c"),
        ("periodic (every step)", result.periodic, "D", "#ff7f0e"),
        ("static (never)", result.static, "v", "#7f7f7f"),
    ):
        if scores is not None and scores.value is not None:
            right.scatter(
                [scores.cost(result.cost)],
                [scores.value],
                marker=marker,
                s=70,
                color=color,
                label=f"{name}: {scores.value:.4f}, {scores.retrains:g} retrains",
                zorder=3,
            )
    if chosen is not None and chosen.heldout is not None and chosen.heldout.value is not None:
        right.scatter(
            [chosen.heldout.cost(result.cost)],
            [chosen.heldout.value],
            s=260,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=2,
            label=f"picked (trial {chosen.trial}): {chosen.heldout.value:.4f},"
            f" {chosen.heldout.retrains:g} retrains",
            zorder=4,
        )
    right.set_title(f"held out: newest {result.holdout:.0%} ({result.holdout_rows} rows)")
    better = "higher" if result.higher_is_better else "lower"
    for axis in (left, right):
        axis.set_xlabel(f"cost: {unit}")
        axis.set_ylabel(f"{metric} ({better} is better)")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"reoptd policy tune: {result.model}, study {result.study}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
