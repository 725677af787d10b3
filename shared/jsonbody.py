"""Strict JSON request bodies: what PostgreSQL or the queue cannot hold is a 422 at the door.

FastAPI parses bodies with the standard library, which takes `NaN`, `Infinity`, `1e999` and
integers of any size, and JSON strings may carry U+0000. PostgreSQL's jsonb and text refuse NUL
and non-finite numbers, and the worker's JSON encoder refuses integers beyond 64 bits, so each
of those used to surface as a 500 (or a run that could not be recorded) long after the request.
This middleware checks a JSON body once, before any route sees it, and answers 422 saying what
was wrong; a valid body is handed on unchanged.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["StrictJSONMiddleware", "UnsupportedJSON", "check_json"]

# What orjson (the worker's and ingest's encoder) can write: signed and unsigned 64-bit.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NUL_ESCAPE = b"\\u0000"


class UnsupportedJSON(ValueError):
    """Valid JSON that the platform cannot store; the message is the 422's `msg`."""


def _refuse_constant(name: str) -> Any:
    raise UnsupportedJSON(f"{name} is not a JSON number (use null or a string)")


def _checked_int(digits: str) -> int:
    # Checked on the digit string: a 100,000-digit integer never becomes a Python int.
    if len(digits) > 21:
        raise UnsupportedJSON("integers beyond 64 bits are not supported (send it as a string)")
    value = int(digits)
    if not _INT_MIN <= value <= _INT_MAX:
        raise UnsupportedJSON("integers beyond 64 bits are not supported (send it as a string)")
    return value


def _checked_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnsupportedJSON(f"number {text[:40]} is out of range")
    return value


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def check_json(raw: bytes) -> str | None:
    """Why `raw` (a JSON document) cannot be accepted, or None when it can (or is not JSON at
    all: the route's own parser reports that)."""
    try:
        value = json.loads(
            raw,
            parse_constant=_refuse_constant,
            parse_int=_checked_int,
            parse_float=_checked_float,
        )
    except UnsupportedJSON as exc:
        return str(exc)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:  # not JSON, or not UTF-8: the route's parser says so in its own words
        return None
    # Only a `\u0000` escape can put a NUL in a parsed string (a raw NUL byte is not JSON).
    if _NUL_ESCAPE in raw and _has_nul(value):
        return "NUL characters (\\u0000) are not allowed in strings or keys"
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return True  # FastAPI parses a body without a content type as JSON too


class StrictJSONMiddleware:
    """Pure ASGI: buffers a JSON request body (up to `max_bytes`, 413 beyond), checks it with
    `check_json`, and replays it to the app; any other request passes straight through."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _reply(send, 413, f"request body over {self.max_bytes} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = check_json(body) if body.strip() else None
        if problem is not None:
            detail = [{"loc": ["body"], "msg": problem, "type": "value_error"}]
            await _reply(send, 422, detail)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnect, as the server reports it

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, detail: Any) -> None:
    payload = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
