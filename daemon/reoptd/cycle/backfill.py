"""Backfill: re-score past windows whose labels arrived after they were checked.

A check at 10:00 sees the rows of its window, but most of their labels come hours later. Each
new check looks back over ``monitor.backfill.within`` for past checks that had unlabelled rows,
re-reads each such window with the labels known now, and computes the policy's metrics on it
with the model that was champion *then*. The old check's ``metrics`` and ``labelled_rows``
become the re-scored ones and ``signals.backfill`` records what changed and when, so status,
history and the metric triggers all see the window's real metric.

Who calls it: ``ModelLoop`` after every check. The selection of windows (``due``) and the
re-scoring (``rescore``) are plain functions of stored rows, a source and a model. Beside it,
``label_health``: how a separate label feed joins the predictions (labels matching no
prediction, duplicate ids), which the current check records.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from reoptd.data import Source, labelled, validate_read
from reoptd.errors import ArtifactError, DataError
from reoptd.models import Model
from reoptd.monitor import evaluate, metric_names
from reoptd.policy import METRICS, Policy
from reoptd.signals import Backfilled, BackfillRecord, Labels, Signals
from reoptd.store import CheckRecord, Store

log = logging.getLogger("reoptd.backfill")


@dataclass
class Backfill:
    """The outcome of re-scoring one past window."""

    check_id: int
    window_end: datetime
    labelled_rows_before: int
    labelled_rows: int
    metrics: dict[str, float]
    #: the metrics the check estimated without labels, and their realised values now
    estimated: dict[str, float] = field(default_factory=dict)
    realised: dict[str, float] = field(default_factory=dict)

    def summary(self) -> Backfilled:
        """What the check that did the re-scoring lists in its ``signals.backfilled``."""
        return Backfilled(
            check_id=self.check_id,
            window_end=self.window_end,
            labelled_rows=self.labelled_rows,
            metrics=self.metrics,
            estimated={k: v for k, v in self.estimated.items() if k in self.realised} or None,
            realised=self.realised or None,
        )


def backfill(
    policy: Policy,
    source: Source,
    store: Store,
    model_of: Callable[[int], Model],
    now: datetime,
    measure: Callable[..., dict[str, float]] = evaluate,
) -> list[Backfill]:
    """Re-score the windows that are ``due`` and store the results on their checks.

    An old check keeps what it first measured in ``signals.backfill`` (``metrics_before``,
    ``labelled_rows_before``) while its ``metrics`` and ``labelled_rows`` become the re-scored
    ones. A window that failed to re-read is logged and left for a later check. ``measure``
    scores a window's labelled rows (``monitor.evaluate``; a backtest's memoizes it).
    """
    spec = policy.monitor.backfill
    if spec.within is None:
        return []
    done = []
    for old in due(policy, waiting(store, policy.model, now - spec.within, now), now):
        assert old.id is not None
        signals = Signals.from_json(old.signals)
        try:
            assert old.champion_version is not None
            model = model_of(old.champion_version)
            result = rescore(policy, source, old, model, now, measure)
        except (DataError, ArtifactError) as exc:
            log.warning(
                "%s: backfill of the window ending %s failed: %s", policy.model, old.window_end, exc
            )
            result = None
        if signals.backfill is None:
            signals.backfill = BackfillRecord(tried=now)
        record = signals.backfill
        record.tried = now
        if result is None:
            store.update_check(old.id, signals=signals.to_json())
            continue
        record.at = now
        if signals.estimation is not None and result.realised:
            signals.estimation.realised = result.realised  # beside the estimate, on its check
        record.labelled_rows = result.labelled_rows
        record.metrics = result.metrics
        if record.labelled_rows_before is None:
            record.labelled_rows_before = old.labelled_rows
        if record.metrics_before is None:
            record.metrics_before = dict(old.metrics)
        store.update_check(
            old.id,
            metrics=result.metrics,
            labelled_rows=result.labelled_rows,
            signals=signals.to_json(),
        )
        done.append(result)
        log.info(
            "%s: backfilled the window ending %s: %d labelled rows (was %d)%s",
            policy.model,
            f"{old.window_end:%Y-%m-%d %H:%M}",
            result.labelled_rows,
            result.labelled_rows_before,
            "".join(f" {k} {v:.3f}" for k, v in result.metrics.items()),
        )
    return done


def due(policy: Policy, checks: Sequence[CheckRecord], now: datetime) -> list[CheckRecord]:
    """Past checks whose windows may have gained labels, at most ``max_windows`` of them.

    A check qualifies while it lies within ``backfill.within`` of ``now`` and some of its rows
    were unlabelled. The ones tried longest ago go first, so a window whose labels never come
    cannot starve the others.
    """
    spec = policy.monitor.backfill
    if spec.within is None:
        return []
    horizon = now - spec.within
    candidates = [
        c
        for c in checks
        if c.status == "ok"
        and c.id is not None
        and c.champion_version is not None
        and horizon <= c.at < now
        and c.labelled_rows < c.rows
    ]
    candidates.sort(key=lambda c: (_tried(c) or c.at, c.at))
    return candidates[: spec.max_windows]


def _tried(check: CheckRecord) -> datetime | None:
    record = Signals.from_json(check.signals).backfill
    return None if record is None else record.tried


def waiting(store: Store, model: str, since: datetime, now: datetime) -> list[CheckRecord]:
    """Checks of ``model`` in ``[since, now)`` that still had unlabelled rows, straight from the
    store: a daemon checking every minute has 1,440 checks in a day, and only a few qualify."""
    return store.waiting_checks(model, since, now)


def rescore(
    policy: Policy,
    source: Source,
    check: CheckRecord,
    model: Model,
    now: datetime,
    measure: Callable[..., dict[str, float]] = evaluate,
) -> Backfill | None:
    """The check's window re-read with the labels known at ``now``; None if none came since.

    The rows are read up to ``now`` (sources show a label only to reads after it arrived) and
    cut back to the window.
    """
    frame = source.read(check.window_start, now)
    if len(frame):
        ts = frame[policy.timestamp]
        frame = frame[ts < pd.Timestamp(check.window_end)]
    frame = validate_read(frame, policy, source)
    rows = labelled(frame, policy)
    if len(rows) <= check.labelled_rows:
        return None
    names = list(dict.fromkeys([*check.metrics, *metric_names(policy)]))
    # the label-free estimates the check made get their realised values too
    estimated = Signals.from_json(check.signals).estimated
    known = METRICS[policy.task]
    extra = [n for n in estimated if n in known and n not in names]
    measured = measure(model, rows, policy.target, [*names, *extra], policy.promote.costs)
    metrics = {n: measured[n] for n in names}
    realised = {n: measured[n] for n in estimated if n in measured and math.isfinite(measured[n])}
    assert check.id is not None
    return Backfill(
        check.id, check.window_end, check.labelled_rows, len(rows), metrics, estimated, realised
    )


def label_health(policy: Policy, source: Source, now: datetime) -> Labels | None:
    """For a separate label feed (a source with ``label_health``): how the labels that arrived
    since the last window join the predictions of the window and the backfill horizon. None
    for sources without a label feed, or when the feed could not be read (logged)."""
    health = getattr(source, "label_health", None)
    if health is None:
        return None
    monitor = policy.monitor
    span = monitor.window + (monitor.backfill.within or timedelta(0))
    try:
        stats = health(now - span, now - monitor.window, now)
    except DataError as exc:
        log.warning("%s: label join not measured: %s", policy.model, exc)
        return None
    return Labels(**stats)
