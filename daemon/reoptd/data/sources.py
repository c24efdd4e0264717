"""The built-in kinds of ``data.production`` and ``data.labels``, declared as plugins
(``reoptd.plugins.SOURCES``): ``files`` (Parquet/CSV), ``demo`` (the built-in stream), ``api``
(rows POSTed to the daemon's HTTP API) and ``sql`` (a database table or query). Light on
purpose: the sources themselves are imported when one is opened."""

from __future__ import annotations

from typing import Any

from reoptd.errors import DataError
from reoptd.plugins import SOURCES, SourceKind

__all__ = ["API", "DEMO", "FILES", "SQL", "STREAM"]


def _files(policy: Any, store: Any) -> Any:
    spec = policy.data.production
    if "://" in spec.path:  # s3://bucket/... or any fsspec URL
        from reoptd.data._objstore import ObjectSource

        return ObjectSource(spec.path, policy.timestamp, spec.format, required=policy.features.all)
    from reoptd.data._files import FileSource

    return FileSource(spec.path, policy.timestamp, spec.format, required=policy.features.all)


def _label_files(policy: Any) -> Any:
    labels = policy.data.labels
    assert labels.path is not None  # the policy schema requires it for kind: files
    if "://" in labels.path:  # s3://bucket/... or any fsspec URL
        from reoptd.data._objstore import ObjectLabels

        return ObjectLabels(labels.path, policy, labels.format, labels.arrived)
    from reoptd.data._labels import LabelFiles

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


def _home() -> Any:
    from reoptd.settings import Settings

    return Settings().home


def _stream(policy: Any, store: Any) -> Any:
    from reoptd.data._stream import StreamSource, stream_log

    required = [policy.timestamp, *policy.features.all]
    log = stream_log(policy, policy.data.production, "predictions", required, _home())
    return StreamSource(log, policy.timestamp)


def _label_stream(policy: Any) -> Any:
    from reoptd.data._stream import StreamLabels, stream_log

    labels = policy.data.labels
    if policy.id is None:
        raise DataError(f"model {policy.model!r}: a label stream needs the policy's `id` column")
    required = [policy.id, policy.target] + ([labels.arrived] if labels.arrived else [])
    log = stream_log(policy, labels, "labels", required, _home())
    return StreamLabels(log, policy, labels.arrived)


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
        description="Parquet/CSV files matching `path` (a local glob, or s3:// and any fsspec URL)",
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


STREAM = SOURCES.register(
    SourceKind(
        name="stream",
        description="JSON messages on a NATS JetStream `subject`, kept under REOPTD_HOME/streams",
        open=_stream,
        open_labels=_label_stream,
        label_description="JSON messages on a NATS JetStream `subject`",
    )
)
