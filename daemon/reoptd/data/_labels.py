"""Labels that arrive after their predictions, joined to them by the policy's row id.

``join_labels`` is the one join every label feed uses (label files here; the HTTP API's stored
labels go through the same function): a pure function of two frames, so it is tested on its
own. ``LabeledSource`` wraps a production source and a label feed into one ``Source``: what it
reads looks exactly like the demo stream, rows with their target filled in where the label has
arrived and NaN where it has not, so the check, the backfill and the retrain need no special case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from reoptd.clock import utc
from reoptd.data._files import TableCache, parse_timestamps
from reoptd.errors import DataError
from reoptd.policy import Policy


@dataclass
class LabelJoin:
    """The predictions with their labels, and what the join could not use."""

    frame: pd.DataFrame
    matched: int  # prediction rows that got a label from the label feed
    unmatched: int  # labels whose id matches no prediction row given to the join
    duplicates: int  # labels dropped because a later label for the same id replaced them

    def stats(self) -> dict[str, int]:
        return {"matched": self.matched, "unmatched": self.unmatched, "duplicates": self.duplicates}


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, policy: Policy) -> LabelJoin:
    """Fill ``policy.target`` of ``predictions`` from ``labels``, matching on ``policy.id``.

    ``labels`` has the id and target columns, oldest first (the order they arrived in): for an
    id labelled twice the last label wins, and the earlier ones are counted as duplicates. A label
    whose id matches no prediction is counted, not an error (its prediction may lie outside the
    rows read). A target the predictions already carry is kept where the feed has none.
    """
    key, target = policy.id, policy.target
    if key is None:
        raise DataError(f"model {policy.model!r}: joining labels needs the policy's `id` column")
    for column in (key, target):
        if column not in labels.columns:
            raise DataError(f"labels: column {column!r} is missing", column=column)
    if key not in predictions.columns:
        raise DataError(f"predictions: id column {key!r} is missing", column=key)
    labels = labels[labels[target].notna()]
    latest = labels.drop_duplicates(subset=key, keep="last")
    duplicates = len(labels) - len(latest)
    found = latest[key].isin(predictions[key])
    unmatched = int((~found).sum())
    lookup = latest.loc[found].set_index(key)[target]
    frame = predictions.copy()
    joined = frame[key].map(lookup)
    matched = int(joined.notna().sum())
    if target in frame.columns:
        joined = joined.where(joined.notna(), frame[target])
    if pd.api.types.is_numeric_dtype(joined) or policy.task == "regression":
        joined = joined.astype(float)
    frame[target] = joined
    return LabelJoin(frame, matched, unmatched, duplicates)


class LabelFeed(Protocol):
    name: str

    def labels(self, until: datetime) -> pd.DataFrame:
        """Every label that had arrived before ``until``, oldest first."""
        ...


class LabelFiles:
    """Labels from Parquet/CSV files matching a glob; a file is re-read only when it changes.

    With an ``arrived`` column a label is visible only to reads after it arrived, so a backtest
    or a re-read of an old window sees the labels as they were; without one, every label in the
    files counts, in file-name order (name label files so that they sort by time).
    """

    def __init__(
        self, pattern: str, policy: Policy, fmt: str = "auto", arrived: str | None = None
    ) -> None:
        if policy.id is None:
            raise DataError(f"model {policy.model!r}: label files need the policy's `id` column")
        self.pattern = pattern
        self.fmt = fmt
        self.arrived = arrived
        self.columns = [policy.id, policy.target] + ([arrived] if arrived else [])
        self.task = policy.task
        self.name = f"label files {pattern}"
        self._tables = TableCache(fmt, self._prepare)

    def labels(self, until: datetime) -> pd.DataFrame:
        tables = self._tables.load_all(self.pattern)
        if not tables:
            return pd.DataFrame(columns=self.columns)
        if self.task == "classification":
            same_kind(tables, self.columns[1])
        frames = [frame for _, frame in tables]
        frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if self.arrived is None:
            return frame
        frame = frame[frame[self.arrived] < pd.Timestamp(utc(until))]
        return frame.sort_values(self.arrived, kind="stable")

    def _prepare(self, path: Path | str, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(f"{path}: label column {missing[0]!r} is missing", column=missing[0])
        frame = frame[self.columns].copy()
        if self.arrived is not None:
            frame[self.arrived] = parse_timestamps(frame, self.arrived, str(path))
        return frame


def same_kind(tables: Sequence[tuple[Path | str, pd.DataFrame]], target: str) -> None:
    """Raise ``DataError`` naming the file, row and column of the first label whose kind
    (number, string, boolean) differs from the first file's first label's: a string "1" beside
    numeric labels would fail every retrain on the window ("Unknown label type")."""
    expected: tuple[str, Path | str, Any] | None = None
    for path, frame in tables:
        values = frame[target]
        for row, value in zip(values.index, values, strict=True):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            kind = _kind(value)
            if expected is None:
                expected = (kind, path, value)
            elif kind != expected[0]:
                raise DataError(
                    f"{path}: row {row}: label column {target!r}: {value!r} is a {kind}, but"
                    f" the labels of {expected[1]} are {expected[0]}s (e.g. {expected[2]!r}):"
                    " a model's labels must all be of one kind",
                    column=target,
                )
            if values.dtype != object:
                break  # a typed column: one value tells its kind


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


class LabeledSource:
    """A production source whose rows get their labels from a separate feed, joined by id.

    ``read(start, end)`` returns the rows of the window with every label that had arrived before
    ``end``, so it reads like the demo stream: NaN targets where no label came yet.
    """

    def __init__(self, production: Source, feed: LabelFeed, policy: Policy) -> None:
        self.production = production
        self.feed = feed
        self.policy = policy
        self.name = f"{production.name} + {feed.name}"

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        predictions = self.production.read(start, end)
        return join_labels(predictions, self.feed.labels(end), self.policy).frame

    def label_health(
        self, rows_since: datetime, labels_since: datetime, end: datetime
    ) -> dict[str, int]:
        """How the labels that arrived in ``[labels_since, end)`` join the predictions of
        ``[rows_since, end)``: matched, unmatched (no prediction with that id) and duplicate ids.
        A feed without arrival times has all its labels judged."""
        labels = self.feed.labels(end)
        arrived = getattr(self.feed, "arrived", None)
        if arrived is not None and arrived in labels.columns:
            labels = labels[labels[arrived] >= pd.Timestamp(utc(labels_since))]
        predictions = self.production.read(rows_since, end)
        return join_labels(predictions, labels, self.policy).stats()


class Source(Protocol):
    name: str

    def read(self, start: datetime, end: datetime) -> pd.DataFrame: ...
