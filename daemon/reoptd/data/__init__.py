"""Where production rows come from: files, the built-in demo stream, rows POSTed to the API;
and batch validation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import pandas as pd

from reoptd.data._demo import DemoSource
from reoptd.data._files import FileSource, parse_timestamps, read_table
from reoptd.data._ingest import IngestSource
from reoptd.data._labels import LabeledSource, LabelFiles, LabelJoin, join_labels
from reoptd.data._replay import ReplaySource, naive_utc
from reoptd.data._validate import labelled, validate_batch
from reoptd.errors import DataError
from reoptd.policy import Policy

if TYPE_CHECKING:
    from reoptd.store import Store


class Source(Protocol):
    name: str

    def read(self, start, end) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, oldest first."""
        ...


def open_source(policy: Policy, registry: Store | None = None) -> Source:
    """The production source a policy names (kind ``api`` reads what ``registry`` stored),
    joined with its late labels when the policy names a label source."""
    source = _production(policy, registry)
    labels = policy.data.labels
    if labels is not None:
        feed = LabelFiles(labels.path, policy, labels.format, labels.arrived)
        return LabeledSource(source, feed, policy)
    return source


def _production(policy: Policy, registry: Store | None) -> Source:
    spec = policy.data.production
    if spec.kind == "demo":
        return DemoSource(seed=spec.seed)
    if spec.kind == "api":
        if registry is None:
            raise DataError(
                f"model {policy.model!r}: data.production.kind api reads rows posted to the"
                " daemon's API; it needs the daemon's registry"
            )
        return IngestSource(registry, policy)
    assert spec.path is not None
    return FileSource(spec.path, policy.timestamp, spec.format, required=policy.features.all)


__all__ = [
    "DemoSource",
    "FileSource",
    "IngestSource",
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
