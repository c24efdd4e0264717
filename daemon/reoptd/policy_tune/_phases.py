"""Where a trial's checks fall: the warm-ups that start its steps at several phases of a step.

A backtest checks at one grid of instants, but a deployed policy's checks fall wherever its
start put them, so how often a policy fires depends on where a change falls between two
checks. A trial scored on one grid can be lucky. Seen on ``bench/policy_tune.py``'s stream: a
drift trigger ``for: 2`` with a lowered per-feature threshold and a 400 s window made 4
retrains on the searched rows with the grid as given, and 6, 8 and 6 with the grid a quarter,
half and three quarters of a step later. Held out it made 3 where 2 would do. A policy with
the base's threshold made 4 on all four grids and 2 held out. Scored on the grid as given, the
lucky policy looked just as cheap and 0.6 point better, so the search and the knee chose it.

So the searched rows are backtested at ``phases`` grids, the first step moved on by 1/phases of
a step each time, and a trial is scored by the mean over them (``Scores.mean``): the value and
cost a policy can expect whatever the phase of its checks.
"""

from __future__ import annotations

import numpy as np

from reoptd.backtest import Span


def phase_warmups(first: Span, step: Span, ts: np.ndarray, phases: int) -> list[Span]:
    """The warm-ups that start the steps ``k / phases`` of a step after ``first`` does, for
    ``k`` in ``0 .. phases - 1``: ``first`` itself, then rows of ``ts`` (the searched rows'
    times). A phase that falls on an earlier one's row (a step of fewer rows than ``phases``) or
    past the data is left out."""
    if phases < 1:
        raise ValueError(f"phases must be at least 1, got {phases}")
    if first.rows is not None:
        start = first.rows
    else:
        assert first.duration is not None
        start = int(np.searchsorted(ts, ts[0] + np.timedelta64(first.duration), side="left"))
    out, seen = [first], {start}
    for k in range(1, phases):
        if step.rows is not None:
            at = start + step.rows * k // phases
        else:
            assert step.duration is not None
            later = ts[min(start, len(ts) - 1)] + np.timedelta64(step.duration * k / phases)
            at = int(np.searchsorted(ts, later, side="left"))
        if at < len(ts) and at not in seen:
            seen.add(at)
            out.append(Span(rows=at))
    return out
