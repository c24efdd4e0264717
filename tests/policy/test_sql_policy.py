"""The policy side of ``kind: sql``: credentials never in a policy, a table or a query with
binds, labels read by their arrival time; and what `reoptd policy explain` says about it."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from label_streams import policy

from reoptd.errors import PolicyError
from reoptd.policy import explain, parse_policy


def _text(production: dict[str, Any], labels: dict[str, Any] | None = None) -> str:
    body = policy().model_dump(mode="json", by_alias=True)
    body["data"] = {"production": production} | ({"labels": labels} if labels else {})
    return yaml.safe_dump(body)


def _problems(production: dict[str, Any], labels: dict[str, Any] | None = None) -> str:
    with pytest.raises(PolicyError) as error:
        parse_policy(_text(production, labels), "p.yaml")
    return str(error.value)


def test_a_table_or_a_query_with_binds() -> None:
    table = parse_policy(_text({"kind": "sql", "url_env": "DB", "table": "app.preds"}), "p.yaml")
    assert table.data.production.table == "app.preds"
    query = "SELECT * FROM p WHERE ts >= :start AND ts < :end AND ts::date > '2026-01-01'"
    parsed = parse_policy(_text({"kind": "sql", "url_env": "DB", "query": query}), "p.yaml")
    assert parsed.data.production.query == query
    text = "\n".join(explain(parsed))
    assert "the query `SELECT * FROM p" in text and "$DB" in text


@pytest.mark.parametrize(
    ("production", "problem"),
    [
        ({"kind": "sql", "table": "t"}, "kind: sql needs `url_env`"),
        (
            {"kind": "sql", "url": "postgresql://app:hunter2@db/app", "table": "t"},
            "a URL with a password does not belong in a policy",
        ),
        ({"kind": "sql", "url_env": "DB"}, "either `table` or `query`"),
        ({"kind": "sql", "url_env": "DB", "table": "t", "query": "q"}, "either `table`"),
        ({"kind": "sql", "url_env": "DB", "query": "SELECT * FROM t"}, "missing: :start, :end"),
        (
            {"kind": "sql", "url_env": "DB", "query": "SELECT * FROM t WHERE ts::date < :end"},
            "missing: :start",
        ),
        ({"kind": "sql", "url_env": "DB", "table": "t; DROP TABLE x"}, "is not a table name"),
        ({"kind": "files", "path": "a/*.csv", "table": "t"}, "only read by kind: sql"),
    ],
)
def test_bad_sql_blocks_are_refused(production: dict[str, Any], problem: str) -> None:
    text = _problems(production)
    assert problem in text and "data.production" in text
    assert "hunter2" not in text


def test_a_url_without_password_is_allowed() -> None:
    spec = {"kind": "sql", "url": "postgresql://reader@db/app", "table": "t"}
    assert parse_policy(_text(spec), "p.yaml").data.production.url == spec["url"]


def test_sql_labels_need_their_arrival_column() -> None:
    production = {"kind": "sql", "url_env": "DB", "table": "p"}
    labels = {"kind": "sql", "url_env": "DB", "table": "labels"}
    assert "kind: sql needs `arrived`" in _problems(production, labels)
    labels["arrived"] = "labelled_at"
    parsed = parse_policy(_text(production, labels), "p.yaml")
    assert parsed.data.labels is not None and parsed.data.labels.arrived == "labelled_at"
    assert "kind: files needs a `path`" in _problems(production, {"kind": "files"})
