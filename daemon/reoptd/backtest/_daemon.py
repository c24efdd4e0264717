"""``reoptd run --replay FILE``: the daemon's cycles over a recorded history, on its own store.

Unlike the backtest (a throw-away store, prequential scoring against baselines), a replay is the
daemon itself run over the past: one ``ModelLoop`` per policy, with the store of
``$REOPTD_HOME`` / ``REOPTD_DATABASE_URL``, a simulated clock set from the data's time range,
and a cycle every ``monitor.every`` from the moment the first monitoring window is full up to
the last row. Afterwards ``reoptd status``, ``models list`` and ``policy explain --history``
show what the daemon would have done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from reoptd.backtest._history import BacktestError, Span, label_times, load_history
from reoptd.clock import SimulatedClock
from reoptd.cycle import CycleOutcome, ModelLoop
from reoptd.data import ReplaySource
from reoptd.metrics import Metrics
from reoptd.policy import Policy, format_duration
from reoptd.store import Store

log = logging.getLogger("reoptd.replay")


@dataclass
class Replay:
    """What a replay did: the clock's range and each model's cycles."""

    start: datetime
    end: datetime  # the last cycle's instant
    cycles: dict[str, int]
    promotions: dict[str, int]


def replay_history(
    policies: list[Policy],
    data: Path,
    store: Store,
    metrics: Metrics,
    *,
    label_delay: Span | None = None,
    start: datetime | None = None,
    on_cycle: Callable[[str, datetime, CycleOutcome], None] | None = None,
) -> Replay:
    """Cycle every policy's loop over ``data`` on a simulated clock; return what happened.

    The clock starts at ``start``, by default the first row plus the longest monitoring window
    (a first cycle then has a full window to check; it trains version 1 on the rows before it,
    and tries again each cycle while they are fewer than ``train.min_rows``), and steps by the
    shortest ``monitor.every`` up to the last row; each loop cycles when its own ``every`` has
    passed.
    """
    loops: list[tuple[ModelLoop, Policy]] = []
    first = last = None
    for policy in policies:
        history = load_history(data, policy)
        if history.synthetic_time:
            raise BacktestError(
                f"{data}: no time column {policy.timestamp!r} for {policy.model}; a replay needs"
                " the rows' times"
            )
        source = ReplaySource(
            history.frame,
            history.policy.timestamp,
            history.policy.target,
            label_times(history, label_delay or Span(rows=0)),
            history.policy,  # each cycle's windows then need no validation of their own
        )
        loop = ModelLoop(history.policy, store, metrics, source=source)
        loops.append((loop, history.policy))
        ts = history.frame[history.policy.timestamp]
        first = ts.iloc[0] if first is None else min(first, ts.iloc[0])
        last = ts.iloc[-1] if last is None else max(last, ts.iloc[-1])
    assert first is not None and last is not None
    widest = max(p.monitor.window for p in policies)
    begin = pd.Timestamp(start) if start is not None else first + widest
    if begin > last:
        raise BacktestError(
            f"{data}: the rows cover {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC; the"
            f" replay starts at {begin:%Y-%m-%d %H:%M}"
            f" (the first row + monitor.window {format_duration(widest)}), after the last row"
        )
    tick = min(p.monitor.every for p in policies)
    clock = SimulatedClock(begin.to_pydatetime())
    log.info(
        "replaying %s: rows %s to %s UTC; simulated clock from %s, a cycle every %s",
        data,
        f"{first:%Y-%m-%d %H:%M}",
        f"{last:%Y-%m-%d %H:%M}",
        f"{begin:%Y-%m-%d %H:%M}",
        ", ".join(f"{p.model}: {format_duration(p.monitor.every)}" for p in policies),
    )
    cycles = {p.model: 0 for p in policies}
    promotions = {p.model: 0 for p in policies}
    due = {p.model: clock.now() for p in policies}
    for loop, _ in loops:
        loop.start()
    ran = begin.to_pydatetime()
    while clock.now() < last + tick:  # the last cycle sees the last row
        now = clock.now()
        for loop, policy in loops:
            if now < due[policy.model]:
                continue
            outcome = loop.cycle(now)
            ran = now
            cycles[policy.model] += 1
            if outcome.run is not None and outcome.run.outcome == "promoted":
                promotions[policy.model] += 1
            due[policy.model] = now + policy.monitor.every
            if on_cycle is not None:
                on_cycle(policy.model, now, outcome)
        clock.advance(tick)
    return Replay(begin.to_pydatetime(), ran, cycles, promotions)
