"""The `/hooks/{token}` route as a raw ASGI endpoint, and its OpenAPI description.

The webhook path skips FastAPI's dependency injection and validation (nothing to validate: any
body is acceptable) and Starlette's Request/Response objects: it reads the ASGI messages and
writes two. FastAPI still serves everything else (/healthz, /readyz, /metrics, /openapi.json),
and the path is added to the OpenAPI document by hand so clients can still discover it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from services.ingest.hooks.service import BodyTooLarge, WebhookService

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


class HookEndpoint:
    """ASGI app for `/hooks/{token}`; the service comes from `app.state.webhooks` (lifespan)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service: WebhookService = scope["app"].state.webhooks

        async def body(limit: int) -> bytes | None:
            return await read_body(receive, limit)

        reply = await service.receive(
            scope["path_params"]["token"],
            scope["method"],
            scope["headers"],
            scope["query_string"],
            body,
        )
        if reply is None:
            return  # the client disconnected: nobody is left to answer
        headers = [_JSON, (b"content-length", str(len(reply.body)).encode()), *reply.headers]
        if reply.close:
            headers.append(_CLOSE)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})


class HookRoute(Route):
    """A plain Starlette route that, like FastAPI's own routes, puts itself in the scope, so
    request metrics are labelled `/hooks/{token}` and never with the token."""

    def __init__(self) -> None:
        super().__init__(HOOK_PATH, HookEndpoint(), methods=list(HOOK_METHODS))
        # Starlette adds HEAD to every GET route; a HEAD must not start a run (405 instead).
        if self.methods is not None:
            self.methods.discard("HEAD")

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """Starlette's match, plus `scope["route"]` for the metrics middleware."""
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


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
            "503": {**_error_response("Queue unavailable; retry later."), "headers": retry_after},
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
