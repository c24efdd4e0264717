"""One backtest of the search, as a pure function of its inputs: what a trial's worker runs.

A ``Work`` holds all a backtest needs by value (the candidate's YAML, which file, its spans), so
it runs the same in the tuner's thread, a worker process or a Ray task, and returns only the
scores the study keeps (``Scores`` of the served policy and the two baselines), not the report.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from reoptd.backtest import BacktestCache, Span, run_backtest
from reoptd.policy_tune._knobs import parse_candidate

Cost = Literal["retrains", "seconds"]


@dataclass(frozen=True)
class Scores:
    """A policy's value and cost on one part of the history (a backtest's served or baseline)."""

    value: float | None
    retrains: int
    promotions: int
    seconds: float  # optimize seconds

    def cost(self, kind: Cost) -> float:
        return float(self.retrains) if kind == "retrains" else self.seconds

    @classmethod
    def of(cls, part: dict[str, Any]) -> Scores:
        """From a backtest report's ``served`` or one of its ``baselines``."""
        return cls(
            value=part["value"],
            retrains=int(part["retrains"]),
            promotions=int(part["promotions"]),
            seconds=float(part["optimize_seconds"]),
        )


@dataclass(frozen=True)
class Work:
    """A backtest of one candidate on one part of the history."""

    text: str  # the candidate policy's YAML
    where: str  # what errors name: "trial 7"
    file: Path  # the search part (a Parquet file the tuner wrote) or the whole history
    warmup: Span
    step: Span
    label_delay: Span
    time_column: str | None

    def on(self, file: Path) -> Work:
        return replace(self, file=file)


#: what a backtest gives the study: the served policy's scores and the baselines'
Outcome = dict[str, Scores]


def backtest(work: Work, cache: BacktestCache) -> Outcome:
    """Backtest ``work``'s candidate through ``cache``; a ``ReoptdError`` says why it cannot."""
    report = run_backtest(
        parse_candidate(work.text, work.where),
        work.file,
        warmup=work.warmup,
        step=work.step,
        label_delay=work.label_delay,
        time_column=work.time_column,
        progress=False,
        cache=cache,
    )
    return {
        "served": Scores.of(report["served"]),
        **{name: Scores.of(part) for name, part in report["baselines"].items()},
    }
