"""One backtest of the search, as a pure function of its inputs: what a trial's worker runs.

A ``Work`` holds all a backtest needs by value (the candidate's YAML, which file, its spans), so
it runs the same in the tuner's thread, a worker process or a Ray task, and returns only the
scores the study keeps (``Scores`` of the served policy and the two baselines), not the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from reoptd.backtest import BacktestCache, Span, run_backtest
from reoptd.policy_tune._knobs import parse_candidate

Cost = Literal["retrains", "seconds"]


@dataclass(frozen=True)
class Scores:
    """A policy's value and cost on one part of the history (a backtest's served or baseline)."""

    value: float | None
    retrains: float  # a count, or on the searched rows the mean over the grids of checks
    promotions: float
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

    @classmethod
    def mean(cls, runs: Sequence[Scores]) -> Scores:
        """The mean of ``runs`` (one policy on several grids of checks), the run itself when
        there is one; the value is None when a run scored no labelled row."""
        if len(runs) == 1:
            return runs[0]
        values = [r.value for r in runs if r.value is not None]
        return cls(
            value=float(np.mean(values)) if len(values) == len(runs) else None,
            retrains=float(np.mean([r.retrains for r in runs])),
            promotions=float(np.mean([r.promotions for r in runs])),
            seconds=float(np.mean([r.seconds for r in runs])),
        )


@dataclass(frozen=True)
class Work:
    """A backtest of one candidate on one part of the history."""

    text: str  # the candidate policy's YAML
    where: str  # what errors name: "trial 7"
    file: Path  # the search part (a Parquet file the tuner wrote) or the whole history
    warmups: tuple[Span, ...]  # one run per grid of checks (``phase_warmups``)
    step: Span
    label_delay: Span
    time_column: str | None

    def on(self, file: Path) -> Work:
        return replace(self, file=file)


#: what a backtest gives the study: the served policy's scores (the mean over the grids) and
#: the baselines' (the first grid's); with several grids, each one's served scores too, under
#: ``PHASE`` and its number
Outcome = dict[str, Scores]
PHASE = "phase "


def backtest(work: Work, cache: BacktestCache) -> Outcome:
    """Backtest ``work``'s candidate through ``cache``, once per grid of checks; a
    ``ReoptdError`` says why it cannot."""
    policy = parse_candidate(work.text, work.where)
    reports = [
        run_backtest(
            policy,
            work.file,
            warmup=warmup,
            step=work.step,
            label_delay=work.label_delay,
            time_column=work.time_column,
            progress=False,
            cache=cache,
        )
        for warmup in work.warmups
    ]
    runs = [Scores.of(report["served"]) for report in reports]
    phases = {f"{PHASE}{k}": run for k, run in enumerate(runs)} if len(runs) > 1 else {}
    return {
        "served": Scores.mean(runs),
        **{name: Scores.of(part) for name, part in reports[0]["baselines"].items()},
        **phases,
    }
