"""Where production rows come from: files, the built-in demo stream; and batch validation."""

from __future__ import annotations

from typing import Protocol

import pandas as pd

from reoptd.data._demo import DemoSource
from reoptd.data._files import FileSource, parse_timestamps, read_table
from reoptd.data._labels import LabeledSource, LabelFiles, LabelJoin, join_labels
from reoptd.data._replay import ReplaySource, naive_utc
from reoptd.data._validate import labelled, validate_batch
from reoptd.policy import Policy


class Source(Protocol):
    name: str

    def read(self, start, end) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, oldest first."""
        ...


def open_source(policy: Policy) -> Source:
    """The production source a policy names."""
    source = _production(policy)
    labels = policy.data.labels
    if labels is not None:
        feed = LabelFiles(labels.path, policy, labels.format, labels.arrived)
        return LabeledSource(source, feed, policy)
    return source


def _production(policy: Policy) -> Source:
    spec = policy.data.production
    if spec.kind == "demo":
        return DemoSource(seed=spec.seed)
    assert spec.path is not None
    return FileSource(spec.path, policy.timestamp, spec.format, required=policy.features.all)


__all__ = [
    "DemoSource",
    "FileSource",
    "LabelFiles",
    "LabelJoin",
    "LabeledSource",
    "ReplaySource",
    "Source",
    "join_labels",
    "labelled",
    "naive_utc",
    "open_source",
    "parse_timestamps",
    "read_table",
    "validate_batch",
]
