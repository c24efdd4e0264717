"""The HTTP API against a real uvicorn server on loopback: reads, promotion, token, ingestion."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from _served import MODEL, TOKEN, Served, api_policy, serve

from reoptd.api import create_app
from reoptd.clock import SimulatedClock
from reoptd.cycle import ModelLoop
from reoptd.data import DemoSource, demo
from reoptd.data._ingest import count_rows
from reoptd.metrics import Metrics
from reoptd.policy import parse_policy
from reoptd.settings import DEMO_POLICY
from reoptd.store.sql import SqlStore


@pytest.fixture
def served(api_template: Path, tmp_path: Path):
    with serve(api_template, tmp_path / "home") as s:
        yield s


def _walk(routes) -> list:
    """Routes, with those of included routers (FastAPI keeps them behind a wrapper)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(_walk(inner.routes) if inner is not None else [route])
    return out


def _mutating_routes() -> list[tuple[str, str]]:
    """Every non-GET route of the app, read from the app itself (its routes and its published
    schema): a new route cannot escape the token tests."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        registry = SqlStore(f"sqlite:///{d}/r.db", f"{d}/a")
        app = create_app(registry, [api_policy()], SimulatedClock(demo.START), token=TOKEN)
        registry.close()
    found = set()
    for route in _walk(app.routes):
        for method in (getattr(route, "methods", None) or set()) - {"GET", "HEAD"}:
            found.add((method, route.path))
    for path, operations in app.openapi()["paths"].items():
        found |= {(m.upper(), path) for m in operations if m not in ("get", "head")}
    return sorted((m, p.replace("{name}", MODEL)) for m, p in found)


MUTATING = _mutating_routes()


def test_every_mutating_route_is_found() -> None:
    paths = {p for _m, p in MUTATING}
    assert {f"/models/{MODEL}/promote", f"/ingest/{MODEL}/labels"} <= paths
    assert len(MUTATING) == 5


def _demo_rows(start, end, *, labels: bool = False) -> list[dict]:
    frame = DemoSource().read(start, end)
    if labels:
        frame = frame[["request_id", "churned"]].dropna()
    else:
        frame = frame.drop(columns=["churned"])
        frame["ts"] = frame["ts"].map(lambda t: t.isoformat())
    return json.loads(frame.to_json(orient="records"))


# -- health and reads ------------------------------------------------------------------------------


def test_health_readiness_and_the_openapi_schema(served: Served) -> None:
    with served.client(None) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["database"] is True and ready.json()["ready"] is True
        schema = http.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    promote = schema["paths"]["/models/{name}/promote"]["post"]
    assert promote["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/models/{name}/versions"]["get"]


def test_readiness_fails_when_the_scheduler_is_not_running(
    api_template: Path, tmp_path: Path
) -> None:
    with serve(api_template, tmp_path / "h", scheduler_running=lambda: False) as s:
        response = httpx.get(f"{s.url}/readyz")
    assert response.status_code == 503
    assert response.json()["scheduler"] is False and "scheduler" in response.json()["detail"]


def test_models_versions_checks_and_champion(served: Served) -> None:
    with served.client(None) as http:
        (summary,) = http.get("/models").json()
        assert summary["name"] == MODEL and summary["champion_version"] == 1
        assert summary["pending"] == [2] and summary["source"] == "api"
        detail = http.get(f"/models/{MODEL}").json()
        assert detail["mode"] == "manual" and detail["events"][0]["to_version"] == 1
        versions = http.get(f"/models/{MODEL}/versions").json()
        assert [v["status"] for v in versions] == ["champion", "pending"]
        assert http.get(f"/models/{MODEL}/checks").json() == []  # seeding ran no check
        champion = http.get(f"/models/{MODEL}/champion").json()
        assert champion["version"] == 1 and champion["sha256"] == versions[0]["sha256"]
        missing = http.get("/models/nope/versions")
        assert missing.status_code == 404 and "'nope'" in missing.json()["detail"]
        assert http.get(f"/models/{MODEL}/checks", params={"limit": 0}).status_code == 422


def test_the_artifact_has_its_sha256_an_etag_and_answers_304(served: Served) -> None:
    with served.client(None) as http:
        response = http.get(f"/models/{MODEL}/champion/artifact")
        assert response.status_code == 200
        sha = hashlib.sha256(response.content).hexdigest()
        assert response.headers["X-Reoptd-Sha256"] == sha
        assert response.headers["ETag"] == f'"{sha}"'
        assert response.headers["X-Reoptd-Version"] == "1"
        same = http.get(f"/models/{MODEL}/champion/artifact", headers={"If-None-Match": f'"{sha}"'})
        assert same.status_code == 304 and same.content == b""
        other = http.get(f"/models/{MODEL}/champion/artifact", headers={"If-None-Match": '"x"'})
        assert other.status_code == 200 and other.content == response.content


# -- promotion -------------------------------------------------------------------------------------


def test_promote_rollback_and_approve_through_the_api(served: Served) -> None:
    with served.client() as http:
        assert http.post(f"/models/{MODEL}/rollback").status_code == 409  # nothing before v1
        unknown = http.post(f"/models/{MODEL}/promote", json={"version": 9})
        assert unknown.status_code == 404 and "no version 9" in unknown.json()["detail"]
        event = http.post(f"/models/{MODEL}/approve", json={"reason": "checked"}).json()
        assert (event["kind"], event["from_version"], event["to_version"]) == ("promote", 1, 2)
        assert event["reason"] == "checked"
        assert event["at"].startswith(served.clock.now().isoformat()[:19])
        nothing = http.post(f"/models/{MODEL}/approve")
        assert nothing.status_code == 409 and "waiting for approval" in nothing.json()["detail"]
        again = http.post(f"/models/{MODEL}/promote", json={"version": 2})
        assert again.status_code == 409 and "already the champion" in again.json()["detail"]
        back = http.post(f"/models/{MODEL}/rollback", json={"reason": "bad live"}).json()
        assert (back["kind"], back["to_version"]) == ("rollback", 1)
        assert served.registry.model(MODEL).champion_version == 1
        promoted = http.post(f"/models/{MODEL}/promote", json={"version": 2}).json()
        assert promoted["to_version"] == 2
        assert http.get(f"/models/{MODEL}/champion").json()["version"] == 2


# -- the token -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_every_mutating_route_needs_the_token(served: Served, method: str, path: str) -> None:
    body = {"version": 2}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = httpx.request(method, served.url + path, json=body, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert served.registry.model(MODEL).champion_version == 1
    assert count_rows(served.registry, MODEL) == (0, 0)


@pytest.mark.parametrize(("method", "path"), MUTATING)
def test_without_a_configured_token_mutation_is_disabled(
    api_template: Path, tmp_path: Path, method: str, path: str
) -> None:
    with serve(api_template, tmp_path / "h", token=None) as s:
        for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": f"Bearer {TOKEN}"}):
            response = httpx.request(method, s.url + path, json={"version": 2}, headers=headers)
            assert response.status_code == 403
            assert "REOPTD_API_TOKEN" in response.json()["detail"]
        assert httpx.get(f"{s.url}/models").status_code == 200  # reads stay open
        assert s.registry.model(MODEL).champion_version == 1


# -- ingestion -------------------------------------------------------------------------------------


def test_ingested_rows_are_what_the_daemon_monitors(served: Served) -> None:
    """Rows and labels posted as JSON and CSV come back through the `api` source, joined on id;
    a cycle of the daemon checks them."""
    end = served.clock.now()
    rows = _demo_rows(end - timedelta(hours=2), end)
    labels = _demo_rows(end - timedelta(hours=2), end, labels=True)  # those arrived by `end`
    with served.client() as http:
        first = http.post(f"/ingest/{MODEL}/predictions", json={"rows": rows[:400]})
        assert first.json() == {"model": MODEL, "kind": "predictions", "accepted": 400}
        csv = _csv(rows[400:])
        second = http.post(
            f"/ingest/{MODEL}/predictions", content=csv, headers={"Content-Type": "text/csv"}
        )
        assert second.json()["accepted"] == len(rows) - 400
        third = http.post(f"/ingest/{MODEL}/labels", json=labels)
        assert third.json()["accepted"] == len(labels)
    assert count_rows(served.registry, MODEL) == (len(rows), len(labels))

    loop = ModelLoop(served.policy, served.registry, Metrics())  # its source: what was posted
    window = loop.source.read(end - timedelta(hours=2), end)
    expected = DemoSource().read(end - timedelta(hours=2), end)
    assert len(window) == len(expected)
    assert window["request_id"].tolist() == [str(i) for i in expected["request_id"]]
    assert window["monthly_charges"].tolist() == expected["monthly_charges"].tolist()
    assert window["churned"].isna().tolist() == expected["churned"].isna().tolist()
    assert window["churned"].dropna().tolist() == expected["churned"].dropna().tolist()
    outcome = loop.cycle(end)
    assert outcome.check is not None and outcome.check.status == "ok", outcome.check.reason
    assert outcome.check.rows == len(rows) and outcome.check.labelled_rows == len(labels)
    assert outcome.check.drift_share > 0  # v1 learnt before the drift the posted rows carry


def _csv(rows: list[dict]) -> str:
    columns = list(rows[0])
    lines = [",".join(columns)] + [",".join(str(r[c]) for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


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
    row.update(change)
    return {k: v for k, v in row.items() if v is not ...}


BAD_BATCHES = {
    "wrong type": ([_row(), _row(request_id="r2", tenure="twelve")], [(1, "tenure", "number")]),
    "missing column": ([_row(contract=...)], [(0, "contract", "missing column")]),
    "bad timestamp": ([_row(ts="yesterday")], [(0, "ts", "date-time")]),
    "null id": ([_row(request_id=None)], [(0, "request_id", "empty")]),
    "nan": ([_row(monthly_charges=float("inf"))], None),
    "huge number": ([_row(tenure=10**400)], [(0, "tenure", "out of range")]),
    "words for a time": ([_row(ts="now")], [(0, "ts", "ISO 8601")]),
    "category a list": ([_row(contract=["a"])], [(0, "contract", "category")]),
    "repeated id": ([_row(), _row()], [(1, None, "repeats row 0")]),
    "not an object": ([_row(), 5], [(1, None, "object")]),
}


@pytest.mark.parametrize("case", list(BAD_BATCHES))
def test_a_batch_with_a_bad_row_is_refused_whole(served: Served, case: str) -> None:
    rows, expected = BAD_BATCHES[case]
    with served.client() as http:
        if expected is None:  # JSON cannot carry inf: send it as Python's json writes it
            response = http.post(
                f"/ingest/{MODEL}/predictions",
                content=json.dumps(rows),
                headers={"Content-Type": "application/json"},
            )
            expected = [(0, "monthly_charges", "finite")]
        else:
            response = http.post(f"/ingest/{MODEL}/predictions", json=rows)
    assert response.status_code == 422, response.text
    problems = response.json()["problems"]
    for row, column, words in expected:
        assert any(
            p["row"] == row and p["column"] == column and words in p["error"] for p in problems
        ), problems
    assert "nothing stored" in response.json()["detail"]
    assert count_rows(served.registry, MODEL) == (0, 0)


def test_bad_labels_csv_and_bodies_are_refused_and_nothing_is_stored(served: Served) -> None:
    with served.client() as http:
        labels = http.post(
            f"/ingest/{MODEL}/labels", json=[{"request_id": "a", "churned": 1}, {"request_id": "b"}]
        )
        assert labels.status_code == 422
        assert labels.json()["problems"] == [
            {"row": 1, "column": "churned", "error": "missing column"}
        ]
        csv = "request_id,ts,tenure,monthly_charges,support_calls,contract,payment_method\n"
        csv += "a,2026-01-02T05:00:00Z,3,x,1,one-year,credit-card\n"
        bad_csv = http.post(
            f"/ingest/{MODEL}/predictions", content=csv, headers={"Content-Type": "text/csv"}
        )
        assert bad_csv.status_code == 422
        assert bad_csv.json()["problems"][0]["column"] == "monthly_charges"
        not_json = http.post(
            f"/ingest/{MODEL}/predictions",
            content="{",
            headers={"Content-Type": "application/json"},
        )
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["detail"]
        xml = http.post(
            f"/ingest/{MODEL}/labels", content="<a/>", headers={"Content-Type": "application/xml"}
        )
        assert xml.status_code == 415
        empty = http.post(f"/ingest/{MODEL}/labels", json={"rows": []})
        assert empty.status_code == 422 and "no rows" in empty.json()["detail"]
        unknown = http.post("/ingest/other/labels", json=[{"request_id": "a", "churned": 1}])
        assert unknown.status_code == 404 and "demo_churn" in unknown.json()["detail"]
    assert count_rows(served.registry, MODEL) == (0, 0)


def test_oversized_bodies_and_batches_get_413(api_template: Path, tmp_path: Path) -> None:
    with serve(api_template, tmp_path / "h", max_body_bytes=2000, max_rows=3) as s:
        with s.client() as http:
            big = json.dumps([_row(request_id=str(i)) for i in range(40)])
            declared = http.post(
                f"/ingest/{MODEL}/predictions",
                content=big,
                headers={"Content-Type": "application/json"},
            )
            assert declared.status_code == 413 and "2000 bytes" in declared.json()["detail"]

            def chunks():  # no Content-Length: the limit holds while streaming
                for i in range(0, len(big), 500):
                    yield big[i : i + 500].encode()

            streamed = http.post(f"/ingest/{MODEL}/predictions", content=chunks())
            assert streamed.status_code == 413
            many = http.post(
                f"/ingest/{MODEL}/predictions", json=[_row(request_id=str(i)) for i in range(4)]
            )
            assert many.status_code == 413 and "limit of 3 rows" in many.json()["detail"]
        assert count_rows(s.registry, MODEL) == (0, 0)


def test_ids_ingested_before_are_a_conflict(served: Served) -> None:
    with served.client() as http:
        assert http.post(f"/ingest/{MODEL}/predictions", json=[_row()]).status_code == 200
        again = http.post(f"/ingest/{MODEL}/predictions", json=[_row(request_id="r9"), _row()])
        assert again.status_code == 409
        assert again.json()["problems"] == [
            {"row": 1, "column": "request_id", "error": "id 'r1' was ingested before"}
        ]
    assert count_rows(served.registry, MODEL) == (1, 0)  # r9 was not stored either


def test_a_model_that_does_not_read_from_the_api_refuses_rows(
    api_template: Path, tmp_path: Path
) -> None:
    with serve(api_template, tmp_path / "h", policies=[api_policy(kind="demo")]) as s:
        with s.client() as http:
            response = http.post(f"/ingest/{MODEL}/predictions", json=[_row()])
        assert response.status_code == 409 and "kind: api" in response.json()["detail"]


def test_a_new_model_trains_its_first_version_on_posted_rows(tmp_path: Path) -> None:
    """Rows may arrive before the daemon's first cycle; that cycle then learns from them."""
    empty = tmp_path / "empty"
    SqlStore(f"sqlite:///{empty / 'reoptd.db'}", empty / "artifacts").close()
    with serve(empty, tmp_path / "home") as s:
        end = s.clock.now()
        rows = _demo_rows(end - timedelta(hours=2), end)
        labels = _demo_rows(end - timedelta(hours=2), end, labels=True)
        with s.client() as http:
            assert http.get("/models").json() == []
            assert http.post(f"/ingest/{MODEL}/predictions", json=rows).status_code == 200
            assert http.post(f"/ingest/{MODEL}/labels", json=labels).status_code == 200
            assert http.get(f"/models/{MODEL}").json()["champion_version"] is None
        outcome = ModelLoop(s.policy, s.registry, Metrics()).cycle(end)
        assert outcome.run is not None and outcome.run.outcome == "promoted", outcome.run
        v1 = s.registry.version(MODEL, 1)
        assert v1.train_rows + v1.metrics["holdout_rows"] == len(labels)  # labelled rows only


def test_an_api_source_needs_an_id_column_and_the_registry() -> None:
    from reoptd.data import open_source
    from reoptd.errors import DataError, PolicyError

    text = DEMO_POLICY.read_text().replace(
        "production: {kind: demo, seed: 7}", "production: {kind: api}"
    )
    with pytest.raises(PolicyError, match="kind api needs an `id` column"):
        parse_policy(text.replace("id: request_id", "# no id"), "api.yaml")
    with pytest.raises(DataError, match="needs the daemon's registry"):
        open_source(parse_policy(text, "api.yaml"))
