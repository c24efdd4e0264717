"""The FastAPI application: read-only routes open (loopback by default), mutating routes behind
the bearer token. Registry errors map to HTTP: unknown model or version -> 404, a state that
forbids the change (nothing to roll back to, nothing pending, already champion) -> 409.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from reoptd import __version__
from reoptd.api import _models as api
from reoptd.api._auth import TokenGuard
from reoptd.clock import Clock
from reoptd.cycle import PolicyWatcher
from reoptd.data import (
    BatchRejected,
    check_labels,
    check_predictions,
    label_kind,
    store_labels,
    store_predictions,
    stored_label_kind,
)
from reoptd.errors import (
    ArtifactError,
    ModelNotFound,
    ReoptdError,
    StoreUnavailable,
    VersionNotFound,
)
from reoptd.models import serving_form
from reoptd.policy import Policy
from reoptd.signals import Signals
from reoptd.store import EventRecord, Store, VersionRecord

#: what a model name may look like (the policy's own pattern); anything else is a 404 at once
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")

ModelName = Annotated[str, Path(description="the policy's `model:` name")]

#: a route's extra OpenAPI responses, as FastAPI's ``responses=`` takes them
Responses = dict[int | str, dict[str, Any]]

_INGEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"rows": {"type": "array", "items": {"type": "object"}}},
                        "required": ["rows"],
                    },
                    {"type": "array", "items": {"type": "object"}},
                ]
            }
        },
        "text/csv": {"schema": {"type": "string"}},
    },
}


def _event(model: str, row: EventRecord) -> api.Event:
    return api.Event(
        model=model,
        kind=row.kind,
        from_version=row.from_version,
        to_version=row.to_version,
        reason=row.reason,
        at=row.at,
    )


def _version(row: VersionRecord) -> api.Version:
    return api.Version.model_validate(row, from_attributes=True)


def create_app(
    registry: Store,
    policies: list[Policy] | PolicyWatcher,
    clock: Clock,
    *,
    token: str | None = None,
    scheduler_running: Callable[[], bool] | None = None,
    models_held: Callable[[], set[str]] | None = None,
    max_body_bytes: int = 32 * 2**20,
    max_rows: int = 50_000,
) -> FastAPI:
    """The API over ``registry`` and ``policies``; times of promotions come from ``clock``.

    ``policies`` is the daemon's ``PolicyWatcher`` (shared with the loops, so an edited policy
    file applies to ingestion as it does to checks), or a list the app watches on its own.

    ``scheduler_running`` tells ``/readyz`` whether the daemon's scheduler runs (the service
    passes it; without it readiness only checks the database); ``models_held``, which models
    this replica checks (listed by ``/readyz``). ``token`` enables the mutating
    routes; without it they answer 403.
    """
    watcher = policies if isinstance(policies, PolicyWatcher) else PolicyWatcher(policies)
    # /docs (Swagger UI) and /redoc load their scripts and styles from this process, not a CDN:
    # the daemon runs on hosts without internet access
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="reoptd",
        version=__version__,
        description="Models, their versions and checks; champion artifacts; promotion;"
        " ingestion of production rows and labels. Mutating routes need"
        " `Authorization: Bearer <REOPTD_API_TOKEN>`.",
    )
    guard = TokenGuard(token)
    mutating = APIRouter(
        route_class=guard.route_class(),  # the token first, before any body is parsed
        dependencies=[Depends(guard)],
        responses={
            401: {"model": api.Error, "description": "missing or wrong bearer token"},
            403: {"model": api.Error, "description": "mutation disabled: no token configured"},
        },
    )
    not_found: Responses = {404: {"model": api.Error, "description": "no such model or version"}}
    conflict: Responses = {409: {"model": api.Error, "description": "the model's state forbids it"}}

    @app.exception_handler(ModelNotFound)
    @app.exception_handler(VersionNotFound)
    async def _not_found(_request: Request, exc: ReoptdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(BatchRejected)
    async def _rejected(_request: Request, exc: BatchRejected) -> JSONResponse:
        problems = [{"row": p.row, "column": p.column, "error": p.error} for p in exc.problems]
        return JSONResponse(
            {"detail": str(exc), "problems": problems}, status_code=409 if exc.conflict else 422
        )

    @app.exception_handler(ArtifactError)
    @app.exception_handler(StoreUnavailable)  # the database is down: retry later, not a 500
    async def _unavailable(_request: Request, exc: ReoptdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "30"})

    @app.exception_handler(ReoptdError)
    async def _conflict(_request: Request, exc: ReoptdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    def model_row(name: str):
        if not NAME.match(name):
            raise ModelNotFound(name)
        return registry.model(name)

    def policy_of(name: str) -> Policy:
        """The policy in force, re-read first if its file changed."""
        watcher.policy(name)  # ModelNotFound names the policies the daemon runs
        return watcher.refresh(name)

    def summary(name: str) -> dict[str, Any]:
        row = model_row(name)
        versions = registry.versions(name)
        policy = watcher.get(name)
        return {
            "name": row.name,
            "task": row.task,
            "champion_version": row.champion_version,
            "champion_since": row.champion_since,
            "versions": len(versions),
            "pending": [v.version for v in versions if v.status == "pending"],
            "source": policy.data.production.kind if policy else None,
        }

    # -- health ------------------------------------------------------------------------------

    @app.get("/healthz", response_model=api.Health, tags=["health"])
    def healthz() -> api.Health:
        """The process is alive and serving HTTP."""
        return api.Health()

    @app.get(
        "/readyz",
        response_model=api.Readiness,
        tags=["health"],
        responses={503: {"model": api.Readiness, "description": "not ready"}},
    )
    def readyz() -> JSONResponse:
        """Ready: the database answers and (under the daemon) the scheduler runs."""
        detail = []
        try:
            registry.ping()
            database = True
        except Exception as exc:  # any driver error means "not ready", never a 500
            database = False
            detail.append(f"database: {type(exc).__name__}: {exc}"[:300])
        scheduler = scheduler_running() if scheduler_running is not None else None
        if scheduler is False:
            detail.append("scheduler: not running")
        ready = database and scheduler is not False
        held = sorted(models_held()) if models_held is not None else None
        body = api.Readiness(
            ready=ready,
            database=database,
            scheduler=scheduler,
            models=held,
            detail="; ".join(detail),
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)

    # -- models (read-only) ------------------------------------------------------------------

    @app.get("/models", response_model=list[api.ModelSummary], tags=["models"])
    def models() -> list[dict[str, Any]]:
        """Every model in the registry with its champion version."""
        return [summary(row.name) for row in registry.models()]

    @app.get("/models/{name}", response_model=api.ModelDetail, tags=["models"], responses=not_found)
    def model(name: ModelName) -> dict[str, Any]:
        """One model: champion, pending versions, its champion history."""
        out = summary(name)
        policy = watcher.get(name)
        out["mode"] = policy.promote.mode if policy else None
        out["events"] = [_event(name, e) for e in registry.events(name)]
        return out

    @app.get(
        "/models/{name}/versions",
        response_model=list[api.Version],
        tags=["models"],
        responses=not_found,
    )
    def versions(name: ModelName) -> list[api.Version]:
        """Every version of a model, oldest first."""
        model_row(name)
        return [_version(v) for v in registry.versions(name)]

    @app.get(
        "/models/{name}/checks",
        response_model=list[api.Check],
        tags=["models"],
        responses=not_found,
    )
    def checks(
        name: ModelName, limit: Annotated[int, Query(ge=1, le=1000)] = 50
    ) -> list[api.Check]:
        """The model's most recent checks, oldest first."""
        model_row(name)
        out = []
        for c in registry.checks(name, limit=limit):
            shown = api.Check.model_validate(c, from_attributes=True)
            shown.signals = Signals.from_json(c.signals).to_json()  # in the current schema
            out.append(shown)
        return out

    def champion_row(name: str) -> VersionRecord:
        model_row(name)
        row = registry.champion(name)
        if row is None:
            raise ModelNotFound(name, "it has no champion yet")
        return row

    @app.get(
        "/models/{name}/champion",
        response_model=api.Version,
        tags=["models"],
        responses=not_found,
    )
    def champion(name: ModelName) -> api.Version:
        """The champion version's metadata."""
        return _version(champion_row(name))

    @app.get(
        "/models/{name}/champion/artifact",
        tags=["models"],
        response_class=Response,
        responses={
            200: {
                "content": {"application/octet-stream": {}},
                "description": "the artifact; headers ETag, X-Reoptd-Sha256, X-Reoptd-Version,"
                " X-Reoptd-Serving-Form (onnx: ONNX Runtime, loads without running code; torch: a"
                " state dict read weights_only; pickle: an sklearn model, loading it runs code)",
            },
            304: {"description": "If-None-Match matched: the champion has not changed"},
            **not_found,
        },
    )
    def artifact(
        name: ModelName, if_none_match: Annotated[str | None, Header()] = None
    ) -> Response:
        """The champion's artifact bytes (sha256-verified before sending). Serving code polls
        with ``If-None-Match: <ETag>`` and gets 304 until a new champion is promoted."""
        row = champion_row(name)
        headers = {
            "ETag": f'"{row.sha256}"',
            "X-Reoptd-Sha256": row.sha256,
            "X-Reoptd-Version": str(row.version),
            "Cache-Control": "no-cache",
        }
        if if_none_match is not None:
            tags = {t.strip().removeprefix("W/").strip('"') for t in if_none_match.split(",")}
            if row.sha256 in tags or "*" in tags:
                return Response(status_code=304, headers=headers)
        data = registry.load_artifact(row)
        headers["X-Reoptd-Serving-Form"] = serving_form(data)
        return Response(data, media_type="application/octet-stream", headers=headers)

    # -- promotion (token) -------------------------------------------------------------------

    @mutating.post(
        "/models/{name}/promote",
        response_model=api.Event,
        tags=["promotion"],
        responses={**not_found, **conflict},
    )
    def promote(name: ModelName, body: api.PromoteRequest) -> api.Event:
        """Make a version the champion (its artifact is verified first)."""
        model_row(name)
        event = registry.promote(name, body.version, at=clock.now(), reason=body.reason)
        return _event(name, event)

    @mutating.post(
        "/models/{name}/rollback",
        response_model=api.Event,
        tags=["promotion"],
        responses={**not_found, **conflict},
    )
    def rollback(
        name: ModelName, body: Annotated[api.RollbackRequest | None, Body()] = None
    ) -> api.Event:
        """Return to the champion before the current one."""
        model_row(name)
        reason = (body or api.RollbackRequest()).reason
        return _event(name, registry.rollback(name, at=clock.now(), reason=reason))

    @mutating.post(
        "/models/{name}/approve",
        response_model=api.Event,
        tags=["promotion"],
        responses={**not_found, **conflict},
    )
    def approve(
        name: ModelName, body: Annotated[api.ApproveRequest | None, Body()] = None
    ) -> api.Event:
        """Promote a version waiting for approval (promote.mode: manual)."""
        model_row(name)
        body = body or api.ApproveRequest()
        return _event(
            name, registry.approve(name, body.version, at=clock.now(), reason=body.reason)
        )

    # -- ingestion (token) -------------------------------------------------------------------

    async def read_rows(request: Request) -> tuple[list[Any], bool]:
        """The batch's rows and whether they came as CSV text; 413/415/400 before validation."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body_bytes:
            await _drain(request, 0)
            raise _Status(413, f"request body of {length} bytes is over {max_body_bytes} bytes")
        chunks, size = [], 0
        stream = request.stream()
        async for chunk in stream:  # chunked or not: a running count stops at the limit
            size += len(chunk)
            if size > max_body_bytes:
                await _drain(request, size, stream)
                raise _Status(413, f"request body is over {max_body_bytes} bytes")
            chunks.append(chunk)
        raw = b"".join(chunks)
        kind = request.headers.get("content-type", "application/json").split(";")[0].strip()
        try:
            body = raw.decode("utf-8-sig")  # a spreadsheet's CSV may start with a BOM
        except UnicodeDecodeError as exc:
            raise _Status(400, f"request body is not UTF-8: {exc}") from None
        if kind == "text/csv":
            try:
                rows: list[Any] = list(csv.DictReader(io.StringIO(body, newline="")))
            except csv.Error as exc:
                raise _Status(400, f"request body is not valid CSV: {exc}") from None
            text_values = True
        elif kind in ("application/json", "") or kind.endswith("+json"):
            try:
                data = json.loads(body)
            except (ValueError, RecursionError) as exc:
                raise _Status(400, f"request body is not valid JSON: {exc}") from None
            if isinstance(data, dict) and isinstance(data.get("rows"), list):
                rows = data["rows"]
            elif isinstance(data, list):
                rows = data
            else:
                raise _Status(422, 'send a JSON list of rows or {"rows": [...]}')
            text_values = False
        else:
            raise _Status(
                415, f"unsupported Content-Type {kind!r}: use application/json or text/csv"
            )
        if len(rows) > max_rows:
            raise _Status(413, f"batch of {len(rows)} rows is over the limit of {max_rows} rows")
        if not rows:
            raise _Status(422, "the batch holds no rows")
        return rows, text_values

    def ingest_policy(name: str) -> Policy:
        policy = policy_of(name)
        if policy.data.production.kind != "api":
            raise ReoptdError(
                f"model {name!r} reads its rows from data.production.kind"
                f" {policy.data.production.kind}; set kind: api in its policy to ingest rows"
            )
        return policy

    async def ingest(
        name: str,
        request: Request,
        kind: Literal["predictions", "labels"],
        check: Callable,
        store: Callable,
    ) -> api.Ingested:
        """Read a batch, ``check`` every row against the policy (``BatchRejected`` names the bad
        ones), and ``store`` all of it in one transaction."""
        policy = ingest_policy(name)
        rows, text_values = await read_rows(request)
        if kind == "labels":
            known = label_kinds.get(name)
            if known is None:
                known = await run_in_threadpool(stored_label_kind, registry, policy, clock.now())
            checked = check(policy, rows, text=text_values, known=known)
        else:
            checked = check(policy, rows, text=text_values)
        count = await run_in_threadpool(store, registry, policy, checked, clock.now())
        if kind == "labels" and checked:
            label_kinds[name] = label_kind(checked[0].label)
        return api.Ingested(model=name, kind=kind, accepted=count)

    #: the kind of each model's stored labels (number, string, boolean), learnt once
    label_kinds: dict[str, str] = {}

    ingest_responses: Responses = {
        400: {"model": api.Error, "description": "the body is not JSON / CSV"},
        413: {"model": api.Error, "description": "body or batch over the size limit"},
        415: {"model": api.Error, "description": "unsupported content type"},
        422: {"model": api.BatchError, "description": "bad rows: the batch is refused whole"},
        409: {"model": api.BatchError, "description": "ids ingested before, or not an api model"},
        **not_found,
    }

    @mutating.post(
        "/ingest/{name}/predictions",
        response_model=api.Ingested,
        tags=["ingest"],
        responses=ingest_responses,
        openapi_extra={"requestBody": _INGEST_BODY},
    )
    async def ingest_predictions(name: ModelName, request: Request) -> api.Ingested:
        """Production rows (id, timestamp, features) as JSON or CSV; all stored or none."""
        return await ingest(name, request, "predictions", check_predictions, store_predictions)

    @mutating.post(
        "/ingest/{name}/labels",
        response_model=api.Ingested,
        tags=["ingest"],
        responses=ingest_responses,
        openapi_extra={"requestBody": _INGEST_BODY},
    )
    async def ingest_labels(name: ModelName, request: Request) -> api.Ingested:
        """Labels (id, target) as JSON or CSV; they join their predictions on the id."""
        return await ingest(name, request, "labels", check_labels, store_labels)

    @app.exception_handler(_Status)
    async def _status(_request: Request, exc: _Status) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.code)

    app.include_router(mutating)
    return app


#: bytes of an oversized body read and thrown away so the client, still sending, gets the 413
#: instead of a reset connection; a longer body is cut off there (the connection closes)
DRAIN_BYTES = 64 * 2**20


async def _drain(request: Request, read: int, stream: AsyncIterator[bytes] | None = None) -> None:
    """Read the rest of an oversized body, keeping nothing, up to ``DRAIN_BYTES`` in all."""
    chunks = request.stream() if stream is None else stream
    try:
        async for chunk in chunks:
            read += len(chunk)
            if read > DRAIN_BYTES:
                return
    except ClientDisconnect:
        return


class _Status(Exception):
    """A plain HTTP error with a message (raised while reading an ingest body)."""

    def __init__(self, code: int, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(detail)
