"""Where production rows come from: files, the built-in demo stream, rows POSTed to the API,
database tables; and batch validation.

Source kinds are plugins (``reoptd.plugins.SOURCES``, declared in ``sources``): ``open_source``
opens the kind a policy names. Other names are imported on first use.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from reoptd import lazy
from reoptd.plugins import SOURCES

if TYPE_CHECKING:
    import pandas as pd

    from reoptd.data._files import FileSource, parse_timestamps, read_table
    from reoptd.data._ingest import (
        BatchRejected,
        IngestSource,
        check_labels,
        check_predictions,
        label_kind,
        store_labels,
        store_predictions,
        stored_label_kind,
    )
    from reoptd.data._labels import LabeledSource, LabelFiles, LabelJoin, join_labels
    from reoptd.data._replay import ReplaySource, naive_utc
    from reoptd.data._sql import SqlLabels, SqlQuery, SqlSource
    from reoptd.data._validate import (
        labelled,
        missing_mask,
        validate_batch,
        validate_read,
        validation_key,
    )
    from reoptd.data.demo import DemoSource
    from reoptd.policy import Policy
    from reoptd.store import Store


class Source(Protocol):
    name: str

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, oldest first."""
        ...


def open_source(policy: Policy, registry: Store | None = None) -> Source:
    """The production source a policy names (kind ``api`` reads what ``registry`` stored),
    joined with its late labels when the policy names a label source."""
    from reoptd.data._labels import LabeledSource

    source: Source = SOURCES.get(policy.data.production.kind).open(policy, registry)
    labels = policy.data.labels
    if labels is not None:
        open_labels: Any = SOURCES.get(labels.kind).open_labels
        return LabeledSource(source, open_labels(policy), policy)
    return source


__all__ = [
    "BatchRejected",
    "DemoSource",
    "FileSource",
    "IngestSource",
    "LabelFiles",
    "LabelJoin",
    "LabeledSource",
    "ReplaySource",
    "Source",
    "SqlLabels",
    "SqlQuery",
    "SqlSource",
    "check_labels",
    "check_predictions",
    "join_labels",
    "label_kind",
    "labelled",
    "missing_mask",
    "naive_utc",
    "open_source",
    "parse_timestamps",
    "read_table",
    "store_labels",
    "store_predictions",
    "stored_label_kind",
    "validate_batch",
    "validate_read",
    "validation_key",
]

__getattr__, __dir__ = lazy.lazy_exports(
    __name__,
    {
        "DemoSource": ".demo",
        "FileSource": "._files",
        "parse_timestamps": "._files",
        "read_table": "._files",
        "BatchRejected": "._ingest",
        "IngestSource": "._ingest",
        "check_labels": "._ingest",
        "check_predictions": "._ingest",
        "label_kind": "._ingest",
        "store_labels": "._ingest",
        "store_predictions": "._ingest",
        "stored_label_kind": "._ingest",
        "LabeledSource": "._labels",
        "LabelFiles": "._labels",
        "LabelJoin": "._labels",
        "join_labels": "._labels",
        "ReplaySource": "._replay",
        "naive_utc": "._replay",
        "SqlLabels": "._sql",
        "SqlQuery": "._sql",
        "SqlSource": "._sql",
        "labelled": "._validate",
        "missing_mask": "._validate",
        "validate_batch": "._validate",
        "validate_read": "._validate",
        "validation_key": "._validate",
    },
)
