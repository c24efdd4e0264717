"""``kind: sql``: production rows and late labels read from a database table or query.

``SqlQuery`` fetches the rows of one time range, with the time filter in the database: through
ADBC into Arrow for PostgreSQL (columnar, no Python object per value), through SQLAlchemy for the
others (MySQL/MariaDB with pymysql). Column types are mapped explicitly (``arrow_frame``).
``Incremental`` keeps what was read in a ``LocalWindow`` and asks the database only for rows
newer than the last read (and for the last ``settle`` again). ``SqlSource`` and ``SqlLabels`` are
the production source and the label feed built on it.

The URL comes from the environment variable the policy names, read at every fetch (a rotated
credential is picked up); it never appears in an error. Every failure of the database or the
driver is a ``DataError`` naming the source: the check is recorded as failed and the next one
tries again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import weakref
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reoptd.clock import utc
from reoptd.data._sql_window import LocalWindow, arrow_frame
from reoptd.errors import DataError, first_line

INSTALL_HINT = "pip install 'reoptd[sql]'"
_BIND = r"(?<![:\w]):{}\b"


class SqlQuery:
    """The rows of ``[start, end)`` on ``time`` from a table or a query, as a typed DataFrame.

    ``columns``: what to select from a table (None: every column). ``numerical``: columns mapped
    to floats (booleans to 0/1); ``categorical``: columns mapped to strings.
    """

    def __init__(
        self,
        *,
        url_env: str | None,
        url: str | None,
        table: str | None,
        query: str | None,
        time: str,
        columns: Sequence[str] | None = None,
        numerical: Sequence[str] = (),
        categorical: Sequence[str] = (),
        name: str,
    ) -> None:
        self.url_env, self.url, self.table, self.query = url_env, url, table, query
        self.time = time
        self.columns = list(columns) if columns is not None else None
        self.numerical, self.categorical = set(numerical), set(categorical)
        self.name = name
        self._engines: dict[str, Any] = {}
        self._adbc: tuple[str, Any] | None = None

    # -- where ----------------------------------------------------------------------------------

    def _url(self) -> Any:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if self.url_env is not None:
            text = os.environ.get(self.url_env)
            if not text:
                raise DataError(
                    f"{self.name}: the environment variable {self.url_env} (url_env) is not set;"
                    " set it to the database's SQLAlchemy URL"
                )
            where = f"the URL in {self.url_env}"
        else:
            assert self.url is not None
            text, where = self.url, "url"
        try:
            return make_url(text)
        except ArgumentError:
            raise DataError(f"{self.name}: {where} is not a SQLAlchemy URL") from None

    def fingerprint(self) -> str:
        """What identifies the rows read: the database (not its credentials) and the query."""
        url = self._url()
        where = [url.get_backend_name(), url.host, url.port, url.database]
        text = json.dumps([where, self.table, self.query, self.time, self.columns], default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- fetch ----------------------------------------------------------------------------------

    def fetch(self, start: datetime, end: datetime) -> pd.DataFrame:
        """The rows with ``start <= time < end``; ``DataError`` naming the source otherwise."""
        return arrow_frame(self.fetch_table(start, end))

    def fetch_table(self, start: datetime, end: datetime) -> pa.Table:
        """``fetch`` as Arrow, its types mapped (``mapped``)."""
        url = self._url()
        start, end = utc(start), utc(end)
        try:
            if url.get_backend_name() == "postgresql":
                table = self._fetch_postgres(url, start, end)
            else:
                table = self._fetch_sqlalchemy(url, start, end)
        except DataError:
            raise
        except ImportError as exc:
            raise DataError(
                f"{self.name}: the database driver is not installed ({exc.name or exc});"
                f" {INSTALL_HINT}"
            ) from None
        except Exception as exc:  # drivers raise their own trees; each is a failed read
            raise DataError(f"{self.name}: cannot read: {first_line(exc)}") from None
        table = mapped(table, self.time, self.numerical, self.categorical, self.name)
        if self.query is not None and pa.types.is_timestamp(table.schema.field(self.time).type):
            ts = table.column(self.time)  # a query may ignore a bind: keep the range exact
            bounds = pa.scalar(start, ts.type), pa.scalar(end, ts.type)
            table = table.filter(pc.and_(pc.greater_equal(ts, bounds[0]), pc.less(ts, bounds[1])))
        return table

    def _select(self, quote: Any, start_bind: str, end_bind: str) -> str:
        if self.query is not None:
            sql = re.sub(_BIND.format("start"), start_bind, self.query)
            return re.sub(_BIND.format("end"), end_bind, sql)
        assert self.table is not None
        table = ".".join(quote(part) for part in self.table.split("."))
        what = "*" if self.columns is None else ", ".join(quote(c) for c in self.columns)
        ts = quote(self.time)
        return f"SELECT {what} FROM {table} WHERE {ts} >= {start_bind} AND {ts} < {end_bind}"

    def _fetch_postgres(self, url: Any, start: datetime, end: datetime) -> pa.Table:
        from sqlalchemy.dialects import postgresql

        quote = postgresql.dialect().identifier_preparer.quote
        sql = self._select(quote, "$1", "$2")
        conn = self._postgres(url)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, (start, end))
                return cursor.fetch_arrow_table()
        except Exception:  # the connection may be broken: the next read opens a new one
            self._close_postgres()
            raise

    def _postgres(self, url: Any) -> Any:
        """The ADBC connection, kept between reads (opening one costs more than an incremental
        read); autocommit, so no transaction stays open between reads. A new URL (a rotated
        credential) opens a new one."""
        import adbc_driver_postgresql.dbapi as adbc  # type: ignore[import-untyped]

        query = dict(url.query)
        query.setdefault("connect_timeout", "10")
        query["options"] = "-cTimeZone=UTC"  # timestamps without zone are UTC
        uri = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
        if self._adbc is not None and self._adbc[0] == uri:
            return self._adbc[1]
        self._close_postgres()
        conn = adbc.connect(uri, autocommit=True)
        self._adbc = (uri, conn)
        weakref.finalize(self, _close_quietly, conn)  # a source dropped by a policy reload
        return conn

    def _close_postgres(self) -> None:
        if self._adbc is not None:
            _, conn = self._adbc
            self._adbc = None
            _close_quietly(conn)

    def _fetch_sqlalchemy(self, url: Any, start: datetime, end: datetime) -> pa.Table:
        from sqlalchemy import text

        engine = self._engine(url)
        quote = engine.dialect.identifier_preparer.quote
        naive = {"start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)}
        with engine.connect() as conn:
            result = conn.execute(text(self._select(quote, ":start", ":end")), naive)
            names = list(result.keys())
            rows = result.fetchall()
        values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
        arrays = []
        for name, column in zip(names, values, strict=True):
            try:
                arrays.append(pa.array(list(column)))
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise DataError(
                    f"{self.name}: column {name!r} mixes types: {first_line(exc)}", column=name
                ) from None
        return pa.Table.from_arrays(arrays, names=names)

    def _engine(self, url: Any) -> Any:
        """One engine per URL (a rotated credential makes a new one)."""
        from sqlalchemy import create_engine

        if url.drivername in ("mysql", "mariadb"):
            url = url.set(drivername=f"{url.drivername}+pymysql")
        key = url.render_as_string(hide_password=False)
        engine = self._engines.get(key)
        if engine is None:
            args: dict[str, Any] = {}
            if url.get_backend_name() in ("mysql", "mariadb"):
                args = {"connect_timeout": 10, "init_command": "SET time_zone = '+00:00'"}
            for old in self._engines.values():
                old.dispose()
            self._engines = {key: create_engine(url, pool_pre_ping=True, connect_args=args)}
            engine = self._engines[key]
        return engine

    def close(self) -> None:
        self._close_postgres()
        for engine in self._engines.values():
            engine.dispose()
        self._engines = {}


def mapped(
    table: pa.Table, time: str, numerical: set[str], categorical: set[str], where: str
) -> pa.Table:
    """``table`` with explicit types: decimals to floats; timestamps to UTC (a timestamp without
    zone is taken to be UTC); booleans to 0/1 (numerical columns and any but categorical ones) or
    "true"/"false" (categorical ones); PostgreSQL enums and other types the driver passes as
    opaque bytes to strings. ``time`` must be a timestamp (or, without rows, of no type)."""
    if time not in table.column_names:
        raise DataError(f"{where}: timestamp column {time!r} is missing", column=time)
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        columns[name] = _mapped(name, column, name in categorical, where)
    result = pa.table(columns)
    kind = result.schema.field(time).type
    if pa.types.is_null(kind):  # no rows (a driver that types columns by their values)
        return result.set_column(
            result.schema.get_field_index(time),
            time,
            pa.chunked_array([], type=pa.timestamp("us", tz="UTC")),
        )
    if not pa.types.is_timestamp(kind):
        raise DataError(
            f"{where}: timestamp column {time!r} is {kind}, not a timestamp", column=time
        )
    return result


def _mapped(name: str, column: pa.ChunkedArray, categorical: bool, where: str) -> Any:
    kind = column.type
    if isinstance(kind, pa.BaseExtensionType):  # ADBC's opaque PostgreSQL types
        storage = pa.chunked_array([c.storage for c in column.chunks], type=kind.storage_type)
        if getattr(kind, "type_name", "") == "numeric":
            column = _cast(storage, pa.float64(), name, where)
        else:
            column = _cast(storage, pa.string(), name, where)
        kind = column.type
    if pa.types.is_decimal(kind):
        return _cast(column, pa.float64(), name, where)
    if pa.types.is_timestamp(kind):
        return _cast(column, pa.timestamp("us", tz="UTC"), name, where)
    if pa.types.is_boolean(kind):
        if categorical:
            return pa.chunked_array(
                [pc.if_else(c, "true", "false") for c in column.chunks], type=pa.string()
            )
        return _cast(column, pa.float64(), name, where)
    return column


def _cast(column: Any, to: pa.DataType, name: str, where: str) -> Any:
    try:
        if pa.types.is_timestamp(to) and column.type.tz is None:
            return pc.assume_timezone(column, "UTC").cast(to)
        return column.cast(to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"{where}: column {name!r} of type {column.type} does not map to {to}:"
            f" {first_line(exc)}",
            column=name,
        ) from None


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # closed already, or the server went away
        conn.close()


class Incremental:
    """Reads through a ``LocalWindow``: a read fetches from the database only the part of its
    range the window lacks, plus the newest ``settle`` again; rows older than ``horizon`` before
    the newest read are forgotten (a read further back fetches them again)."""

    def __init__(
        self, query: SqlQuery, window: LocalWindow, horizon: timedelta, settle: timedelta
    ) -> None:
        self.query = query
        self.window = window
        self.horizon = horizon
        self.settle = settle
        self.fetched_rows = 0  # rows fetched from the database (for tests and benchmarks)
        self._lock = threading.Lock()

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        start, end = utc(start), utc(end)
        with self._lock:
            window = self.window
            window.use(self.query.fingerprint())
            lo, hi = window.lo, window.hi
            if lo is None or hi is None or start > hi:
                fetched = self._fetch(start, end)
                window.clear()
                window.put(start, end, arrow_frame(fetched), fetched)
            elif end < lo:  # older than the window: not kept
                return arrow_frame(self._fetch(start, end))
            else:
                if start < lo:
                    self._put(start, lo, self._fetch(start, lo))
                if end > hi - self.settle:  # newer rows, and the last `settle` again
                    since, upto = max(hi - self.settle, window.lo or start), max(end, hi)
                    self._put(since, upto, self._fetch(since, upto))
            assert window.hi is not None
            window.trim(min(start, window.hi - self.horizon))
            return window.rows(start, end)

    def _put(self, start: datetime, end: datetime, fetched: pa.Table) -> None:
        window = self.window
        if window.columns is not None and fetched.column_names != window.columns:
            # the table changed its columns: the rows kept are no longer what it holds
            assert window.lo is not None and window.hi is not None
            lo, hi = min(window.lo, start), max(window.hi, end)
            window.clear()
            fetched = self._fetch(lo, hi)
            window.put(lo, hi, arrow_frame(fetched), fetched)
            return
        window.put(start, end, arrow_frame(fetched), fetched)

    def _fetch(self, start: datetime, end: datetime) -> pa.Table:
        rows = self.query.fetch_table(start, end)
        self.fetched_rows += rows.num_rows
        return rows


class SqlSource:
    """Production rows from a database (``data.production.kind: sql``)."""

    def __init__(self, reader: Incremental) -> None:
        self.reader = reader
        self.name = reader.query.name

    def read(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Rows with ``start <= timestamp < end``, oldest first."""
        return self.reader.read(start, end)


class SqlLabels:
    """Late labels from a database (``data.labels.kind: sql``), by the time each arrived: a
    label updated later (with a later ``arrived``) is read again and replaces the earlier one."""

    def __init__(self, reader: Incremental, arrived: str) -> None:
        self.reader = reader
        self.arrived = arrived
        self.name = reader.query.name

    def labels(self, until: datetime) -> pd.DataFrame:
        """The labels that arrived in the ``horizon`` before ``until``, oldest first."""
        return self.reader.read(utc(until) - self.reader.horizon, until)
