"""What every HTTP service has in common: health, readiness, metrics, errors, request metrics.

`build_app` is called from each service's `create_app()`; the service adds its own routers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.body_limit import BodyLimit, BodyLimitMiddleware
from shared.jsonbody import StrictJSONMiddleware
from shared.settings import get_settings

log = logging.getLogger(__name__)

ReadinessCheck = Callable[[], Awaitable[object]]

HTTP_REQUESTS = Counter(
    "automateos_http_requests_total",
    "HTTP requests served, by route template (never the raw path: it carries tokens and ids).",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "automateos_http_request_duration_seconds",
    "Time from request start to the response's first byte, by route template.",
    ["service", "method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


class RequestMetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware) so the ingest hot path pays a few microseconds only."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            HTTP_REQUESTS.labels(self.service, method, template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, template).observe(time.perf_counter() - start)


async def _run_check(name: str, check: ReadinessCheck, limit_s: float) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(check(), limit_s)
    except Exception as exc:  # any failure means not ready; say which and why
        return name, f"{type(exc).__name__}: {exc}"[:300]
    return name, None


def build_app(
    *,
    service: str,
    title: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    readiness: Callable[[FastAPI], Mapping[str, ReadinessCheck]],
    max_body_bytes: int | BodyLimit = 64 * 1024,
    version: str = "0.1.0",
) -> FastAPI:
    """A FastAPI app with /healthz, /readyz, /metrics, JSON errors and request metrics.

    `readiness(app)` returns the named checks (e.g. database, redis) that /readyz runs, each
    bounded by a timeout so a hung dependency makes the service unready instead of hanging.
    `max_body_bytes` bounds every request body (413 beyond), or is a function of the request
    scope for a service whose routes differ.
    """
    app = FastAPI(title=title, version=version, lifespan=lifespan)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        checks = readiness(app)
        results = await asyncio.gather(*(_run_check(n, c, 2.0) for n, c in checks.items()))
        failed = {name: error for name, error in results if error}
        body: dict[str, Any] = {"status": "unready" if failed else "ready", "checks": {}}
        for name, error in results:
            body["checks"][name] = error or "ok"
        return JSONResponse(body, status_code=503 if failed else 200)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(Exception)
    async def unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Never leak internals; the log line has the traceback.
        log.exception("unhandled error", extra={"path_template": _template(request)})
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_exception_handler(RequestValidationError, _validation_error)
    # NaN, NUL and 65-bit integers are 422s here rather than 500s in PostgreSQL or the worker.
    app.add_middleware(StrictJSONMiddleware, max_bytes=get_settings().max_body_bytes)
    # Outside the JSON check (added later = runs first): an over-size body is refused before
    # anything buffers or parses it.
    limit = max_body_bytes if callable(max_body_bytes) else _fixed(max_body_bytes)
    app.add_middleware(BodyLimitMiddleware, limit=limit)
    app.add_middleware(RequestMetricsMiddleware, service=service)
    return app


def _fixed(limit: int) -> BodyLimit:
    return lambda scope: limit


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # FastAPI echoes each rejected value as `input` (and some in `ctx`): a rejected password,
    # signature secret or unknown field's value must not come back in a response, or land in a
    # client's logs. The location, the message and the type say what was wrong.
    detail = [
        {key: value for key, value in error.items() if key in ("loc", "msg", "type")}
        for error in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def _template(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", None) or "unmatched"
