"""The `/hooks/{token}` endpoint as raw ASGI in front of FastAPI, and its OpenAPI description.

The webhook path skips FastAPI entirely: its middleware stack, its dependency injection and
validation (nothing to validate: any body is acceptable) and Starlette's Request/Response
objects; it reads the ASGI messages and writes two. FastAPI still serves everything else
(/healthz, /readyz, /metrics, /openapi.json), and the path is added to the OpenAPI document by
hand so clients can still discover it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI
from opentelemetry.trace import StatusCode
from starlette.types import Receive, Scope, Send

from services.ingest.hooks.service import BodyTooLarge, WebhookService
from shared.hooks import RESUME_PATH
from shared.service import RequestMetricsMiddleware
from shared.telemetry import HTTP_METHOD, HTTP_ROUTE, HTTP_STATUS_CODE, entry_span

log = logging.getLogger(__name__)

HOOK_PREFIX = "/hooks/"
HOOK_PATH = "/hooks/{token}"
HOOK_METHODS = ("POST", "GET", "PUT", "PATCH")
_JSON = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, at most `limit` bytes (BodyTooLarge beyond); None if the client left.

    Counting while streaming is what catches chunked bodies, which declare no length.
    """
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    first: bytes = message.get("body", b"")
    if len(first) > limit:
        raise BodyTooLarge
    if not message.get("more_body", False):
        return first  # the common case: the whole body in one message, no copy
    chunks = [first]
    size = len(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True)
class RouteTemplate:
    """What the request metrics middleware reads from `scope["route"]`: the path template."""

    path: str


_HOOK_ROUTE = RouteTemplate(HOOK_PATH)
# Span names are the route template, like the metrics' route label: never the token.
_SPAN_NAMES = {method: f"{method} {HOOK_PATH}" for method in HOOK_METHODS}
_ALLOW = ", ".join(HOOK_METHODS).encode()
_NOT_FOUND = orjson.dumps({"detail": "Not Found"})
_NOT_ALLOWED = orjson.dumps({"detail": "Method Not Allowed"})
_INTERNAL = orjson.dumps({"detail": "internal error"})


async def _send_json(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | tuple[()] = ()
) -> None:
    headers = [_JSON, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HookEndpoint:
    """ASGI app for `/hooks/...`: matches `{token}`, checks the method, runs the service.

    Like Starlette's error middleware, an unexpected exception becomes a logged 500 (never a
    dropped connection); nothing in the service is expected to raise.
    """

    def __init__(self, api: FastAPI) -> None:
        self._api = api  # its lifespan puts the service on api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = scope["path"][len(HOOK_PREFIX) :]
        if not token or "/" in token:
            await _send_json(send, 404, _NOT_FOUND)
            return
        scope["route"] = _HOOK_ROUTE  # so request metrics say /hooks/{token}, not the token
        if scope["method"] not in HOOK_METHODS:
            await _send_json(send, 405, _NOT_ALLOWED, [(b"allow", _ALLOW)])
            return
        service: WebhookService = self._api.state.webhooks
        method = scope["method"]

        async def body(limit: int) -> bytes | None:
            return await read_body(receive, limit)

        # The delivery's span: a child of the sender's span when it sent a valid traceparent.
        # The service names the workflow and run on it, and the job carries its traceparent.
        with entry_span(_SPAN_NAMES[method], _incoming_traceparent(scope["headers"])) as entry:
            span = entry.span
            recording = span.is_recording()
            if recording:
                span.set_attributes({HTTP_METHOD: method, HTTP_ROUTE: HOOK_PATH})
            try:
                reply = await service.receive(
                    token, method, scope["headers"], scope["query_string"], body, entry
                )
            except Exception as exc:
                log.exception(
                    "unhandled error",
                    extra={"path_template": HOOK_PATH, "trace_id": entry.trace_id()},
                )
                if recording:
                    span.record_exception(exc)
                    span.set_attribute(HTTP_STATUS_CODE, 500)
                    span.set_status(StatusCode.ERROR, type(exc).__name__)
                await _send_json(send, 500, _INTERNAL)
                return
            if recording:
                span.set_attribute(HTTP_STATUS_CODE, reply.status)
                if reply.status >= 500:
                    span.set_status(StatusCode.ERROR)
            extra = [*reply.headers, _CLOSE] if reply.close else list(reply.headers)
            await _send_json(send, reply.status, reply.body, extra)


def _incoming_traceparent(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The request's `traceparent` header (ASGI header names are lower-case); entry_span
    ignores a malformed one."""
    for name, value in headers:
        if name == b"traceparent":
            return value.decode("latin-1")
    return None


class IngestApp:
    """The process's ASGI app: `/hooks/...` goes straight to the webhook endpoint (behind the
    shared request metrics), everything else (and the lifespan) to the FastAPI app.

    FastAPI's middleware stack (error, telemetry, body-limit, exception, exit-stack middleware
    and the router) costs about a fifth of a webhook's CPU time here and does nothing for it.
    """

    def __init__(self, api: FastAPI, service: str) -> None:
        self.api = api
        self._hooks = RequestMetricsMiddleware(HookEndpoint(api), service=service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        # Resume callbacks are rare and go through FastAPI like any other route.
        if (
            scope["type"] == "http"
            and path.startswith(HOOK_PREFIX)
            and not path.startswith(RESUME_PATH)
        ):
            await self._hooks(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(method: str) -> dict[str, Any]:
    retry_after = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
    return {
        "summary": f"Deliver a webhook ({method})",
        "operationId": f"deliver_webhook_{method.lower()}",
        "tags": ["webhooks"],
        "description": (
            "Starts a run of the workflow the token belongs to. Answers 202 as soon as the run "
            "is stored on the queue. See docs/webhooks.md for signatures and deduplication."
        ),
        "parameters": [
            {
                "name": "token",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "The secret token of the workflow's webhook URL.",
            },
            *(
                {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                for name in ("Idempotency-Key", "webhook-id", "X-GitHub-Delivery", "traceparent")
            ),
        ],
        "requestBody": {
            "required": False,
            "description": "Any body: JSON, form, text or binary (kept base64).",
            "content": {
                "application/json": {"schema": {}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        },
        "responses": {
            "202": {
                "description": "Run queued (or, for a repeated delivery id, the first run).",
                "headers": {"Location": {"schema": {"type": "string"}}},
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/RunAccepted"}}
                },
            },
            "400": _error_response("Malformed body or over-long idempotency key."),
            "401": _error_response("Missing, invalid or stale signature."),
            "404": _error_response("Unknown or revoked token."),
            "409": _error_response("The workflow is inactive."),
            "413": _error_response("Body over the size limit."),
            "429": {
                **_error_response("This webhook's rate limit is exceeded; retry later."),
                "headers": retry_after,
            },
            "503": {
                **_error_response(
                    "Queue unavailable, over its backlog bound or its storage nearly full; "
                    "retry later."
                ),
                "headers": retry_after,
            },
        },
    }


def document(app: FastAPI) -> None:
    """Add `/hooks/{token}` to the app's OpenAPI document (FastAPI only lists its own routes)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()  # FastAPI's document, which we extend and cache
            schema["paths"][HOOK_PATH] = {m.lower(): _operation(m) for m in HOOK_METHODS}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["RunAccepted"] = {
                "type": "object",
                "required": ["run_id"],
                "properties": {"run_id": {"type": "string", "format": "uuid"}},
            }
            schemas["Error"] = {
                "type": "object",
                "required": ["detail"],
                "properties": {"detail": {"type": "string"}},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
