"""Chaos: hypothesis-generated ingest bodies against a real uvicorn server. Whatever is sent
(odd JSON shapes, huge numbers, NaN and inf, bad or out-of-range times, labels of the wrong
type, deep nesting, huge strings, bytes that are not JSON), no answer is a 5xx, and every
refused row is named by its position and, for a bad cell, its column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _served import MODEL, Served, serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

COLUMNS = ["request_id", "ts", "tenure", "monthly_charges", "support_calls", "contract"]
COLUMNS += ["payment_method", "churned"]

TIMES = st.sampled_from(
    [
        "2026-01-02T05:00:00Z",
        "2026-01-02T05:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+14:00",
        "2262-04-12T00:00:00Z",
        "1677-09-21T00:00:00Z",
        "yesterday",
        "2026-13-45T99:99:99",
        "",
    ]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([-(10**309), 1e308, float("nan"), float("-inf")]),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), NUMBERS, TIMES, st.text(max_size=30), st.just("x" * 300_000)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


@st.composite
def rows(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for column in COLUMNS:
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing column
        sane = {
            "request_id": st.text(min_size=1, max_size=8),
            "ts": TIMES,
            "contract": st.sampled_from(["one-year", "monthly"]),
            "payment_method": st.sampled_from(["credit-card", "check"]),
            "churned": st.sampled_from([0, 1, "1", True, "yes", 0.5]),
        }.get(column, NUMBERS)
        row[column] = draw(st.one_of(sane, VALUES) if draw(st.booleans()) else sane)
    return row


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BODIES = st.one_of(
    st.lists(rows(), min_size=1, max_size=6).map(lambda r: json.dumps(r).encode()),
    st.lists(rows(), max_size=4).map(lambda r: json.dumps({"rows": r}).encode()),
    VALUES.map(lambda v: json.dumps(v).encode()),
    st.lists(VALUES, max_size=4).map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            _deep(20_000),
            b'{"rows": ' + _deep(3000) + b"}",
            b'[{"request_id": "a", "tenure": ' + b"9" * 5000 + b"}]",  # past int parsing limits
            b"\xff\xfe\x00",
            b"",
        ]
    ),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def chaos_server(api_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serve(api_template, tmp_path_factory.mktemp("chaos") / "home") as served:
        yield served


@pytest.fixture(scope="module")
def http(chaos_server: Served) -> Iterator[httpx.Client]:
    with chaos_server.client() as client:
        yield client


@pytest.mark.slow
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES, route=st.sampled_from(["predictions", "labels"]))
def test_generated_ingest_bodies_never_get_a_5xx_and_refusals_name_row_and_field(
    http: httpx.Client, body: bytes, route: str
) -> None:
    answer = http.post(
        f"/ingest/{MODEL}/{route}", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code < 500, answer.text[:500]
    assert answer.status_code in (200, 400, 409, 413, 422), answer.text[:500]
    if answer.status_code in (409, 422) and "problems" in answer.json():
        problems = answer.json()["problems"]
        assert problems
        for problem in problems:
            assert isinstance(problem["row"], int) and problem["row"] >= 0
            assert problem["column"] in (None, *COLUMNS), problem
            if problem["column"] is None:  # a row-level problem: not an object, a repeated id
                assert "row" in problem["error"] or "object" in problem["error"], problem
            assert f"row {problem['row']}" in answer.json()["detail"] or len(problems) > 5
