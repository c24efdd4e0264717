"""Databases for the ``kind: sql`` tests: a new database of its own on the real PostgreSQL
(``postgres_url`` in conftest.py) or on the real MariaDB on 127.0.0.1:3306 (root, no password),
dropped afterwards. Import the fixtures into a test module to use them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


@dataclass
class Database:
    """A database of the test's own: its SQLAlchemy URL and an engine to write tables with."""

    kind: str  # postgresql, mariadb
    url: str
    engine: sa.Engine

    def run(self, *statements: str, **binds: Any) -> None:
        with self.engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement), binds)

    def scalar(self, statement: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(statement)).scalar()


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    import pymysql

    name = f"reoptd_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=5)
    except pymysql.err.OperationalError as exc:
        pytest.fail(f"MariaDB on 127.0.0.1:3306 does not answer ({exc}); or -m 'not external'")
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"{MARIADB}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(params=["postgresql", "mariadb"])
def sql_db(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh database on PostgreSQL, then on MariaDB."""
    fixture = "postgres_url" if request.param == "postgresql" else "mariadb_url"
    url = request.getfixturevalue(fixture)
    engine = sa.create_engine(url)
    if request.param == "mariadb":
        engine = sa.create_engine(url, connect_args={"init_command": "SET time_zone = '+00:00'"})
    else:
        engine = sa.create_engine(url, connect_args={"options": "-c timezone=UTC"})
    yield Database(request.param, url, engine)
    engine.dispose()
