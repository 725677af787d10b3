"""A request body limit for the FastAPI services: 413 before anything parses an oversize body.

A declared `Content-Length` over the limit is refused before a byte of the body is read; a body
without one (chunked) is counted as it streams in and refused at the first byte over. The 413
closes the connection, so the client cannot keep streaming the rest. Ingest's webhook path has
its own streaming limit (services/ingest/hooks/endpoints.py `read_body`).
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BodyLimit = Callable[[Scope], int]


def _too_large(limit: int) -> HTTPException:
    # An HTTPException: FastAPI re-raises it from its body reading, and its handler answers it.
    return HTTPException(413, f"request body over {limit} bytes", headers={"Connection": "close"})


class BodyLimitMiddleware:
    """Pure ASGI: `limit(scope)` is the most bytes this request's body may have."""

    def __init__(self, app: ASGIApp, limit: BodyLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope["headers"])
        if declared is not None and declared > limit:
            body = orjson.dumps({"detail": f"request body over {limit} bytes"})
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", b"%d" % len(body)),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, counted, send)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
