"""The built-in kinds of ``data.production`` and ``data.labels``, declared as plugins
(``reoptd.plugins.SOURCES``): ``files`` (Parquet/CSV), ``demo`` (the built-in stream), ``api``
(rows POSTed to the daemon's HTTP API) and ``sql`` (a database table or query). Light on
purpose: the sources themselves are imported when one is opened."""

from __future__ import annotations

from typing import Any

from reoptd.errors import DataError
from reoptd.plugins import SOURCES, SourceKind

__all__ = ["API", "DEMO", "FILES", "SQL"]


def _files(policy: Any, store: Any) -> Any:
    from reoptd.data._files import FileSource

    spec = policy.data.production
    return FileSource(spec.path, policy.timestamp, spec.format, required=policy.features.all)


def _label_files(policy: Any) -> Any:
    from reoptd.data._labels import LabelFiles

    labels = policy.data.labels
    assert labels.path is not None  # the policy schema requires it for kind: files
    return LabelFiles(labels.path, policy, labels.format, labels.arrived)


def _demo(policy: Any, store: Any) -> Any:
    from reoptd.data.demo import DemoSource

    return DemoSource(seed=policy.data.production.seed)


def _api(policy: Any, store: Any) -> Any:
    from reoptd.data._ingest import IngestSource

    if store is None:
        raise DataError(
            f"model {policy.model!r}: data.production.kind api reads rows posted to the"
            " daemon's API; it needs the daemon's registry"
        )
    return IngestSource(store, policy)


def _api_check(policy: Any) -> list[str]:
    if policy.id is not None:
        return []
    return [
        "id: data.production.kind api needs an `id` column (labels posted to"
        " /ingest/{model}/labels join their predictions on it)"
    ]


FILES = SOURCES.register(
    SourceKind(
        name="files",
        description="Parquet/CSV files matching `path`",
        open=_files,
        open_labels=_label_files,
        label_description="Parquet/CSV files matching `path`",
    )
)
DEMO = SOURCES.register(SourceKind(name="demo", description="the built-in demo stream", open=_demo))
API = SOURCES.register(
    SourceKind(
        name="api",
        description="rows POSTed to the HTTP API (/ingest/{model}/predictions and /labels)",
        open=_api,
        check=_api_check,
    )
)


def _sql(policy: Any, store: Any) -> Any:
    from reoptd.data._sql_open import open_sql

    return open_sql(policy)


def _label_sql(policy: Any) -> Any:
    from reoptd.data._sql_open import open_sql_labels

    return open_sql_labels(policy)


SQL = SOURCES.register(
    SourceKind(
        name="sql",
        description="a database table (filtered on the timestamp column) or a query with :start"
        " and :end binds; URL from the environment variable `url_env`",
        open=_sql,
        open_labels=_label_sql,
        label_description="a database table or query, read by the `arrived` column",
    )
)
