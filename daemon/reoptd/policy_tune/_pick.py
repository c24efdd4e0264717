"""Choosing one policy of the front, and writing it as a policy file with how it was chosen.

The choice uses the search scores only: choosing by the held-out scores would make them an
optimistic estimate. ``knee`` is the front's knee (Satopaa et al.'s "Kneedle"): with value and
cost each scaled to 0..1 between the front's cheapest and its most valuable policy, the policy
whose scaled value most exceeds its scaled cost, the one farthest above the straight line
between those two ends, reaching most of the front's value at a small share of its cost. (Two
rules came before it: the point nearest the ideal corner picked a one-retrain policy barely
above static over a three-retrain one 11 points better; the steepest line from the cheapest
policy prefers a first small step, say +7 points for 1 retrain, over +19 for 3.) ``max-value``
the best value (the cheaper on a tie); ``max-retrains N`` the best value among those with at
most N retrains in the search part.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reoptd.policy_tune._errors import TuneError
from reoptd.policy_tune._study import Candidate, TuneResult
from reoptd.policy_tune._trial import Scores

PICKS = "knee, max-value or 'max-retrains N'"


@dataclass(frozen=True)
class Pick:
    how: str  # knee | max-value | max-retrains
    limit: int | None = None

    def __str__(self) -> str:
        return f"max-retrains {self.limit}" if self.how == "max-retrains" else self.how


def parse_pick(text: str) -> Pick:
    """``knee``, ``max-value``, or ``max-retrains N`` (also ``max-retrains=N``)."""
    value = text.strip().lower()
    if value in ("knee", "max-value"):
        return Pick(value)
    match = re.fullmatch(r"max-retrains[\s=:]+(\d+)", value)
    if match:
        return Pick("max-retrains", int(match.group(1)))
    raise TuneError(f"--pick: expected {PICKS}, got {text!r}")


def pick(result: TuneResult, choice: Pick) -> Candidate:
    """The front's policy ``choice`` names (raises ``TuneError`` when none qualifies)."""
    sign = 1.0 if result.higher_is_better else -1.0
    front = [c for c in result.front if c.search.value is not None]

    def value(c: Candidate) -> float:
        return sign * float(c.search.value or 0.0)

    def cost(c: Candidate) -> float:
        return c.search.cost(result.cost)

    if choice.how == "max-value":
        return max(front, key=lambda c: (value(c), -cost(c)))
    if choice.how == "max-retrains":
        assert choice.limit is not None
        within = [c for c in front if c.search.retrains <= choice.limit]
        if not within:
            fewest = min(c.search.retrains for c in front)
            raise TuneError(
                f"--pick max-retrains {choice.limit}: every policy of the front retrains more"
                f" in the search part (the fewest: {fewest})"
            )
        return max(within, key=lambda c: (value(c), -cost(c)))
    return knee(front, value, cost)


def knee(
    front: list[Candidate],
    value: Callable[[Candidate], float],
    cost: Callable[[Candidate], float],
) -> Candidate:
    """The policy farthest above the line from the cheapest to the most valuable (``value``:
    higher is better), both axes scaled to that span; the cheaper on a tie, the cheapest when
    no policy is dearer and better."""
    cheap = min(front, key=lambda c: (cost(c), -value(c)))
    best = max(front, key=lambda c: (value(c), -cost(c)))
    gain, spend = value(best) - value(cheap), cost(best) - cost(cheap)
    if gain <= 0 or spend <= 0:
        return cheap

    def above(c: Candidate) -> float:
        return (value(c) - value(cheap)) / gain - (cost(c) - cost(cheap)) / spend

    return max(front, key=lambda c: (above(c), -cost(c)))


def write_policy(
    result: TuneResult, chosen: Candidate, choice: Pick, out: Path, base_file: Path, data: Path
) -> None:
    """The chosen policy's YAML under a comment saying how it was chosen and what it scored."""
    metric = result.metric
    share = f"{1 - result.holdout:.0%}"
    direction = "up" if result.higher_is_better else "down"
    lines = [
        f"Tuned by `reoptd policy tune` from {base_file} on {data}",
        f"(study {result.study!r}, trial {chosen.trial}, {result.trials} trials).",
        f"Picked by --pick {choice} on the Pareto front of {metric} ({direction}) against"
        f" {result.cost} (down),",
        f"searched on the older {share} of the rows ({result.search_rows}).",
        f"Search (mean of {result.grids()}): {_scored(metric, chosen.search)}.",
        f"Held out (newest {result.holdout:.0%}, {result.holdout_rows} rows, never searched):"
        f" {_scored(metric, chosen.heldout)};",
        f"  base policy {_scored(metric, result.base.heldout)};",
        f"  periodic (retrain every step) {_scored(metric, result.periodic)};",
        f"  static (never retrain) {_scored(metric, result.static)}.",
    ]
    header = "".join(f"# {line}\n" for line in lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + chosen.text)


def _scored(metric: str, scores: Scores | None) -> str:
    if scores is None or scores.value is None:
        return f"{metric} n/a"
    return f"{metric} {scores.value:.4f} with {scores.retrains:g} retrains"


def table(result: TuneResult, chosen: Candidate | None) -> str:
    """The front beside the base and the baselines, as a text table."""
    metric = result.metric
    headers = ["", "trial", f"search {metric}", "retrains", f"held-out {metric}", "retrains"]
    headers.append("policy")
    rows: list[list[str]] = []
    for c in result.front:
        mark = "*" if c is chosen else ""
        rows.append([mark, str(c.trial), *_pair(c.search), *_pair(c.heldout), c.summary])
    rows.append(["", "base", *_pair(result.base.search), *_pair(result.base.heldout)])
    rows[-1].append(result.base.summary)
    rows.append(["", "periodic", "", "", *_pair(result.periodic), "retrain before every step"])
    rows.append(["", "static", "", "", *_pair(result.static), "never retrain"])
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    out = []
    for row in [headers, *rows]:
        cells = [
            row[i].ljust(widths[i]) if i in (0, 6) else row[i].rjust(widths[i])
            for i in range(len(row))
        ]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def _pair(scores: Scores | None) -> list[str]:
    if scores is None or scores.value is None:
        return ["n/a", "" if scores is None else f"{scores.retrains:g}"]
    return [f"{scores.value:.4f}", f"{scores.retrains:g}"]
