"""The FastAPI app: Atlan's `/workflows/v1` surface over our sources and the Dagster instance.

Every reply has Atlan's envelope `{success, data, message}`. Every endpoint but `/health` needs
`Authorization: Bearer <PG_METADATA_API_TOKEN>` when a token is set. Inline credentials are
used for the one request and never stored, logged or echoed: validation errors name the field,
never its value.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pg_metadata import telemetry
from pg_metadata.api.metrics import CONTENT_TYPE, ApiMetrics
from pg_metadata.api.models import ConfigUpdate, SourceRequest, StartRequest
from pg_metadata.api.settings import ApiSettings
from pg_metadata.api.workflows import ApiError, WorkflowService
from pg_metadata.catalog.connection import Connector
from pg_metadata.catalog.preflight import SERVER_INFO, Check, list_schemas, run_preflight
from pg_metadata.catalog.reader import query_rows
from pg_metadata.catalog.sources import Source
from pg_metadata.errors import ConfigError, PgMetadataError
from pg_metadata.output.storage import DEFAULT_TARGET, open_store

PREFIX = "/workflows/v1"
log = logging.getLogger("pg_metadata.api")


def envelope(data: Any = None, message: str | None = None, success: bool = True) -> dict:
    """Atlan's reply envelope."""
    body: dict[str, Any] = {"success": success, "data": data}
    if message is not None:
        body["message"] = message
    return body


def failure(status: int, message: str, data: Any = None, **headers: str) -> JSONResponse:
    """An error reply in the envelope."""
    return JSONResponse(envelope(data, message, success=False), status_code=status, headers=headers)


class BodyLimit:
    """Refuses request bodies over a size with 413, by Content-Length or as they stream in
    (the body is read whole, at most `limit` bytes, then handed to the app)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            await failure(413, f"request body over {self.limit} bytes")(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:
                await failure(413, f"request body over {self.limit} bytes")(scope, receive, send)
                return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def create_app(
    settings: ApiSettings,
    service: WorkflowService,
    metrics: ApiMetrics | None = None,
) -> FastAPI:
    """The API over one Dagster instance and its configured sources."""
    metrics = metrics or service.metrics or ApiMetrics()
    app = FastAPI(
        title="pg_metadata",
        description="Atlan's PostgreSQL app's REST surface: test credentials, list schemas, "
        "preflight, start/follow/stop extractions (Dagster runs).",
        version="1",
    )
    bearer = HTTPBearer(auto_error=False)

    def require_token(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:  # noqa: B008
        if settings.token is None:
            return
        given = creds.credentials if creds is not None else ""
        if not hmac.compare_digest(given.encode(), settings.token.encode()):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <token>)")

    guarded = [Depends(require_token)]

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return failure(exc.status, str(exc), **extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # never echo the input: a body may hold a password
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        fields = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in detail)
        return JSONResponse(
            {"success": False, "data": None, "message": fields, "detail": detail}, 422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return failure(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return failure(500, f"internal error ({type(exc).__name__}); see the API server's log")

    @app.middleware("http")
    async def _measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]):
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(
            route=route, method=request.method, status=response.status_code
        ).inc()
        metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)
        return response

    def resolve(body: SourceRequest) -> tuple[Source, Connector]:
        """The Source a body names or describes, with the filters it carries."""
        try:
            if body.credentials is not None:
                source = body.credentials.to_source(body.metadata)
            else:
                source = service.source(body.source or "")
                source = body.metadata.apply(source) if body.metadata else source
        except ConfigError as exc:
            raise ApiError(422, str(exc)) from None
        return source, Connector(source)

    @app.get("/health", tags=["health"])
    def health() -> dict:
        """Liveness: the process answers (no token needed)."""
        return envelope({"status": "ok"})

    @app.get("/ready", tags=["health"], dependencies=guarded)
    def ready() -> JSONResponse:
        """Readiness: the Dagster instance and webserver answer."""
        checks = [
            _check("dagsterInstance", service.instance_check),
            _check("dagsterWebserver", service.launcher.ping),
        ]
        ok = all(c.passed for c in checks)
        data = {"status": "ready" if ok else "not_ready", "checks": [c.as_dict() for c in checks]}
        return JSONResponse(envelope(data, success=ok), 200 if ok else 503)

    @app.get("/metrics", tags=["health"], dependencies=guarded)
    def prometheus() -> Response:
        """Prometheus text format."""
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.post(f"{PREFIX}/auth", tags=["workflows"], dependencies=guarded)
    def auth(body: SourceRequest) -> JSONResponse:
        """Test credentials (or a configured source): connect and identify the server."""
        _, connector = resolve(body)
        try:
            conn = connector.connect()
            try:
                (info,) = query_rows(conn, SERVER_INFO, {})
            finally:
                conn.close()
        except PgMetadataError as exc:
            return failure(401, str(exc), {"status": "failed"}, **{"WWW-Authenticate": "Bearer"})
        data = {
            "status": "success",
            "server_version": str(info["version"]).split()[0],
            "user": info["role_name"],
            "database": info["database_name"],
        }
        return JSONResponse(envelope(data, "Authentication successful"))

    @app.post(f"{PREFIX}/metadata", tags=["workflows"], dependencies=guarded)
    def metadata(body: SourceRequest) -> JSONResponse:
        """Every database and schema the credentials can see, to build filters from."""
        source, connector = resolve(body)
        try:
            data = list_schemas(source, connector)
        except PgMetadataError as exc:
            return failure(401, str(exc))
        return JSONResponse(envelope(data))

    @app.post(f"{PREFIX}/check", tags=["workflows"], dependencies=guarded)
    def check(body: SourceRequest) -> JSONResponse:
        """Preflight: every check, and whether an extraction is ready to run."""
        source, connector = resolve(body)
        store = open_store(settings.output or DEFAULT_TARGET, source.name if body.source else "")
        extra = [lambda: _check("dagsterInstance", service.instance_check)]
        if body.source:
            extra.append(lambda: _check("dagsterWebserver", service.launcher.ping))
        report = run_preflight(source, connector, output=store.probe, extra=extra)
        data: dict[str, Any] = {
            f"{c.name}Check": {
                "success": c.passed,
                "successMessage": c.message if c.passed else "",
                "failureMessage": "" if c.passed else c.message,
            }
            for c in report.checks
        }
        data["preflight"] = report.as_dict()
        failed = report.failures()
        if failed:
            data["error"] = "Preflight check failed: " + "; ".join(
                f"{c.name}: {c.message}" for c in failed
            )
        message = "Preflight ready" if report.ready else data["error"]
        return JSONResponse(envelope(data, message))

    @app.post(f"{PREFIX}/start", tags=["workflows"], dependencies=guarded)
    def start(body: StartRequest) -> JSONResponse:
        """Start an extraction of a configured source (all or some databases)."""
        source = service.source(body.source)
        if body.connection is not None:
            _same_connection(
                source, body.connection.connection_qualified_name, body.connection.connection_name
            )
        overrides = body.metadata.overrides() if body.metadata else {}
        data = service.start(body.source, body.databases, overrides, body.workflow_id)
        return JSONResponse(envelope(data, "Workflow started successfully"))

    @app.get(f"{PREFIX}/status/{{workflow_id}}", tags=["workflows"], dependencies=guarded)
    def status(workflow_id: str) -> JSONResponse:
        """State, timings, per-database entity counts and manifests, the failure."""
        return _found(service.status(workflow_id), workflow_id, "Workflow status")

    @app.get(
        f"{PREFIX}/status/{{workflow_id}}/{{run_id}}", tags=["workflows"], dependencies=guarded
    )
    def run_status(workflow_id: str, run_id: str) -> JSONResponse:
        """The same, for one of its runs."""
        return _found(service.status(workflow_id, run_id), f"{workflow_id}/{run_id}", "Run status")

    @app.post(f"{PREFIX}/stop/{{workflow_id}}", tags=["workflows"], dependencies=guarded)
    def stop(workflow_id: str) -> JSONResponse:
        """Cancel the workflow's unfinished runs; it launches no more."""
        return _found(service.stop(workflow_id), workflow_id, "Workflow stopped")

    @app.post(f"{PREFIX}/stop/{{workflow_id}}/{{run_id}}", tags=["workflows"], dependencies=guarded)
    def stop_run(workflow_id: str, run_id: str) -> JSONResponse:
        """Atlan's form of /stop (the whole workflow stops)."""
        return stop(workflow_id)

    @app.get(f"{PREFIX}/config/{{workflow_id}}", tags=["workflows"], dependencies=guarded)
    def get_config(workflow_id: str) -> JSONResponse:
        """The workflow's stored configuration (it holds no secret)."""
        config = service.config(workflow_id)
        return _found(config.public() if config else None, workflow_id, "Workflow configuration")

    @app.post(f"{PREFIX}/config/{{workflow_id}}", tags=["workflows"], dependencies=guarded)
    def set_config(workflow_id: str, body: ConfigUpdate) -> JSONResponse:
        """Change the stored configuration (databases, filters)."""
        changes: dict[str, Any] = {}
        if body.databases is not None:
            changes["databases"] = body.databases
        if body.metadata is not None:
            changes["overrides"] = body.metadata.overrides()
        if body.connection is not None:
            config = service.config(workflow_id)
            if config is not None:
                _same_connection(
                    service.source(config.source),
                    body.connection.connection_qualified_name,
                    body.connection.connection_name,
                )
        config = service.update_config(workflow_id, changes)
        return _found(
            config.public() if config else None, workflow_id, "Workflow configuration updated"
        )

    return app


def _check(name: str, probe: Callable[[], str]) -> Check:
    try:
        return Check(name, True, probe())
    except ApiError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # the instance's own error, on one line
        return Check(name, False, " ".join(str(exc).split())[:300] or type(exc).__name__)


def _found(data: Any, what: str, message: str) -> JSONResponse:
    if data is None:
        raise ApiError(404, f"no workflow {what}")
    return JSONResponse(envelope(data, message))


def _same_connection(source: Source, qualified_name: str | None, name: str | None) -> None:
    if qualified_name and qualified_name != source.connection_qualified_name:
        raise ApiError(
            422,
            f"connection.connection_qualified_name {qualified_name!r} differs from source "
            f"{source.name!r}'s ({source.connection_qualified_name}); change it in the "
            "source's configuration",
        )
    if name and name != source.atlan_connection_name:
        raise ApiError(
            422,
            f"connection.connection_name {name!r} differs from source {source.name!r}'s "
            f"({source.atlan_connection_name}); change it in the source's configuration",
        )


def _where(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def instrument(app: FastAPI) -> None:
    """Request spans (OpenTelemetry's FastAPI instrumentation) when telemetry is on."""
    if telemetry.setup():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="health,metrics")
