"""The fields of ``kind: sql`` in ``data.production`` and ``data.labels`` (``_schema`` mixes
``SqlFields`` into both blocks): where the database is (an environment variable holding a
SQLAlchemy URL, so credentials never sit in a policy) and what to read (a table, filtered on the
policy's timestamp column, or a query with ``:start`` and ``:end`` binds).

Who calls it: pydantic, when a policy is validated. Nothing here connects to a database."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import Field, field_validator, model_validator

from reoptd.policy._plugin_blocks import Block
from reoptd.policy._units import Duration, format_duration

__all__ = ["SqlFields", "describe_sql", "sql_problems"]

#: a table name: ``name`` or ``schema.name`` (quoted by the reader, so no SQL gets through)
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
#: a bind ``:start``/``:end`` (not a PostgreSQL cast such as ``::date``)
_BIND = r"(?<![:\w]):{}\b"


class SqlFields(Block):
    url_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="kind: sql or stream — the environment variable holding the database's"
        " SQLAlchemy URL (e.g. PREDICTIONS_DB_URL=postgresql://reader:secret@db/app) or the"
        " broker's URL (stream; default nats://127.0.0.1:4222); credentials stay out of the"
        " policy",
    )
    url: str | None = Field(
        None,
        description="kind: sql — a SQLAlchemy URL without a password (one with a password is"
        " refused: use url_env)",
    )
    table: str | None = Field(
        None,
        description="kind: sql — the table (or schema.table) to read; rows are filtered on the"
        " policy's timestamp column (labels: on `arrived`) in the database",
    )
    query: str | None = Field(
        None,
        description="kind: sql — instead of `table`, a SELECT with the binds :start and :end"
        " (the window's bounds; labels: bounds of their arrival time)",
    )
    settle: Duration = Field(
        timedelta(minutes=1),
        description="kind: sql — rows this close to the newest read are fetched again by the next"
        " read (a transaction may commit rows with a slightly older timestamp late)",
    )

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        if value is not None and not _TABLE.match(value):
            raise ValueError(f"{value!r} is not a table name (name or schema.name)")
        return value

    @model_validator(mode="after")
    def _sql_shape(self) -> Any:
        problems = sql_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def sql_problems(block: Any) -> list[str]:
    """What is wrong with a ``kind: sql`` block (nothing for other kinds)."""
    if getattr(block, "kind", None) != "sql":
        own: tuple[str, ...] = ("url", "table", "query")
        if block.kind != "stream":  # a stream names its broker's URL with url_env too
            own = ("url_env", *own)
        fields = [f for f in own if getattr(block, f) is not None]
        if fields:
            return [f"`{fields[0]}` is only read by kind: sql"]
        return []
    problems = []
    if block.url is not None:  # checked here, not by a field validator: never echo the value
        problems.extend(_url_problems(block.url))
    if block.url_env is None and block.url is None:
        problems.append("kind: sql needs `url_env` (the environment variable with the URL)")
    elif block.url_env is not None and block.url is not None:
        problems.append("kind: sql takes `url_env` or `url`, not both")
    if (block.table is None) == (block.query is None):
        problems.append("kind: sql needs either `table` or `query` (not both)")
    if block.query is not None:
        missing = [b for b in ("start", "end") if not re.search(_BIND.format(b), block.query)]
        if missing:
            problems.append(
                "query: must use the binds :start and :end (the window's bounds); missing: "
                + ", ".join(f":{b}" for b in missing)
            )
    return problems


def _url_problems(url: str) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return ["url: not a SQLAlchemy URL (dialect://user@host/database)"]
    if parsed.password is not None:
        return [
            "url: a URL with a password does not belong in a policy: put the URL in an"
            " environment variable and name it with `url_env`"
        ]
    return []


def describe_sql(block: Any, rows: str, column: str) -> str:
    """``reoptd policy explain``'s sentence for a ``kind: sql`` block: ``rows`` (what is read,
    e.g. "Production rows") filtered on ``column``."""
    where = (
        f"the database whose SQLAlchemy URL is in ${block.url_env}"
        if block.url_env is not None
        else f"the database at `{block.url}`"
    )
    what = (
        f"the table `{block.table}` of {where}, filtered on `{column}` in the database"
        if block.table is not None
        else f"the query `{' '.join(block.query.split())}` (:start and :end: the bounds of"
        f" `{column}`) on {where}"
    )
    settle = format_duration(block.settle)
    return (
        f"{rows} come from {what}; reads are incremental (only rows newer than the last read"
        f" are fetched, and the last {settle} again; the window is kept under REOPTD_HOME)"
    )
