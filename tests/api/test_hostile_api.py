"""Hostile requests against a real uvicorn server: out-of-range times, labels of another kind,
malformed bodies without a token, oversized chunked uploads, a database that went away."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from _served import MODEL, TOKEN, Served, api_policy, serve

from reoptd.api import ApiServer, create_app
from reoptd.clock import SimulatedClock
from reoptd.data import demo
from reoptd.data._ingest import count_rows
from reoptd.store.sql import SqlStore


@pytest.fixture
def served(api_template: Path, tmp_path: Path) -> Iterator[Served]:
    with serve(api_template, tmp_path / "home") as s:
        yield s


def _row(**change: object) -> dict:
    row = {
        "request_id": "r1",
        "ts": "2026-01-02T05:00:00Z",
        "tenure": 12,
        "monthly_charges": 70.5,
        "support_calls": 1,
        "contract": "one-year",
        "payment_method": "credit-card",
    }
    return {**row, **change}


def _problems(response: httpx.Response) -> list[tuple[int, str | None, str]]:
    return [(p["row"], p["column"], p["error"]) for p in response.json()["problems"]]


@pytest.mark.parametrize(
    "ts", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00", "2300-01-01T00:00:00Z"]
)
def test_a_timestamp_out_of_range_in_utc_is_a_422_naming_row_and_column(
    served: Served, ts: str
) -> None:
    with served.client() as http:
        answer = http.post(
            f"/ingest/{MODEL}/predictions", json=[_row(), _row(request_id="r2", ts=ts)]
        )
    assert answer.status_code == 422, answer.text
    [(row, column, error)] = _problems(answer)
    assert (row, column) == (1, "ts") and "out of range" in error
    assert count_rows(served.registry, MODEL) == (0, 0)


def test_a_string_label_beside_numeric_ones_is_refused_naming_row_and_column(
    served: Served,
) -> None:
    with served.client() as http:
        mixed = [{"request_id": "a", "churned": 1}, {"request_id": "b", "churned": "1"}]
        answer = http.post(f"/ingest/{MODEL}/labels", json=mixed)
        assert answer.status_code == 422, answer.text
        [(row, column, error)] = _problems(answer)
        assert (row, column) == (1, "churned") and "'1' is a string" in error
        rows = [_row(request_id=r) for r in ("a", "b")]
        assert http.post(f"/ingest/{MODEL}/predictions", json=rows).status_code == 200
        assert http.post(f"/ingest/{MODEL}/labels", json=mixed[:1]).status_code == 200
        # later batches must match the labels stored before, even alone
        alone = http.post(f"/ingest/{MODEL}/labels", json=mixed[1:])
        assert alone.status_code == 422
        [(row, column, error)] = _problems(alone)
        assert (row, column) == (0, "churned") and "labels stored before are numbers" in error
    assert count_rows(served.registry, MODEL) == (2, 1)


def test_a_new_server_learns_the_stored_label_kind_from_the_database(
    api_template: Path, tmp_path: Path
) -> None:
    with serve(api_template, tmp_path / "h") as s, s.client() as http:
        ts = (s.clock.now() - timedelta(hours=1)).isoformat()  # in the window being checked
        rows = [_row(request_id=r, ts=ts) for r in ("a", "b")]
        assert http.post(f"/ingest/{MODEL}/predictions", json=rows).status_code == 200
        label = [{"request_id": "a", "churned": 0}]
        assert http.post(f"/ingest/{MODEL}/labels", json=label).status_code == 200
        fresh = create_app(s.registry, [s.policy], s.clock, token=TOKEN)
        server = ApiServer(fresh, "127.0.0.1", 0)
        server.start()
        try:
            other = httpx.post(
                f"{server.url}/ingest/{MODEL}/labels",
                json=[{"request_id": "b", "churned": "yes"}],
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        finally:
            server.stop()
        assert other.status_code == 422 and "stored before are numbers" in other.text


@pytest.mark.parametrize(
    "path", [f"/ingest/{MODEL}/predictions", f"/models/{MODEL}/promote", f"/models/{MODEL}/approve"]
)
def test_malformed_json_without_a_token_is_a_401_not_a_parser_message(
    served: Served, path: str
) -> None:
    with served.client(token=None) as http:
        answer = http.post(
            path, content=b'{"rows": [', headers={"Content-Type": "application/json"}
        )
    assert answer.status_code == 401, answer.text
    assert "json" not in answer.text.lower()
    with served.client(token="wrong") as http:
        answer = http.post(path, content=b"{{{", headers={"Content-Type": "application/json"})
    assert answer.status_code == 401


def test_a_chunked_upload_over_the_limit_gets_a_413_not_a_reset(
    api_template: Path, tmp_path: Path
) -> None:
    limit = 100_000
    with serve(api_template, tmp_path / "h", max_body_bytes=limit) as s, s.client() as http:
        row = json.dumps(_row()).encode()

        def chunks() -> Iterator[bytes]:  # no Content-Length: ~4 MB sent chunk by chunk
            yield b"["
            for _ in range(25_000):
                yield row + b","
            yield row + b"]"

        streamed = http.post(
            f"/ingest/{MODEL}/predictions",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 413, streamed.text
        assert f"over {limit} bytes" in streamed.json()["detail"]
        declared = http.post(
            f"/ingest/{MODEL}/predictions",
            content=b"[" + b",".join([row] * 25_000) + b"]",
            headers={"Content-Type": "application/json"},
        )
        assert declared.status_code == 413
        # the connection is still usable after both
        assert http.get("/healthz").status_code == 200
        assert count_rows(s.registry, MODEL) == (0, 0)


def test_the_default_limits_take_the_documented_50000_rows(
    api_template: Path, tmp_path: Path
) -> None:
    from reoptd.settings import Settings

    settings = Settings()
    rows = [_row(request_id=f"r{i}") for i in range(settings.api_max_rows)]
    body = json.dumps(rows).encode()
    assert len(body) < settings.api_max_body_bytes


@pytest.mark.external
def test_read_routes_answer_503_while_the_database_is_unreachable(
    postgres_url: str, tmp_path: Path
) -> None:
    store = SqlStore(postgres_url, tmp_path / "artifacts")
    policy = api_policy()
    store.ensure_model(policy, demo.START)
    app = create_app(store, [policy], SimulatedClock(demo.START), token=TOKEN)
    server = ApiServer(app, "127.0.0.1", 0)
    server.start()
    base, name = postgres_url.rsplit("/", 1)
    admin = base.replace("postgresql+psycopg", "postgresql") + "/postgres"
    try:
        assert httpx.get(f"{server.url}/models").status_code == 200
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
        try:
            for path in ("/models", f"/models/{MODEL}", f"/models/{MODEL}/versions"):
                answer = httpx.get(f"{server.url}{path}")
                assert answer.status_code == 503, (path, answer.text)
                assert name in answer.json()["detail"]
            assert httpx.get(f"{server.url}/readyz").status_code == 503
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert httpx.get(f"{server.url}/models").status_code == 200
    finally:
        server.stop()
        store.close()
