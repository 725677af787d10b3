"""Turn a raw HTTP request into the `trigger` a run sees: body, headers, query, trace context.

Everything here is pure CPU on bytes the endpoint already holds, written for the hot path: the
common cases (a UTF-8 JSON body, a handful of headers, an empty query) take the shortest branch.
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import parse_qsl

import orjson

REDACTED = "[redacted]"

# Header values that carry credentials or signatures: a run record must never show them, and
# run records are readable by anyone who can read the workflow.
ALWAYS_REDACTED = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-hub-signature",
        "x-hub-signature-256",
        "webhook-signature",
        "x-internal-token",
    }
)


# Senders' delivery ids, in order of preference when the workflow verifies no signature (an
# explicit Idempotency-Key wins); a signature scheme puts its own delivery id first (resolver.py).
IDEMPOTENCY_HEADERS = (
    ("idempotency-key", "Idempotency-Key"),
    ("webhook-id", "webhook-id"),
    ("x-github-delivery", "X-GitHub-Delivery"),
)


class MalformedRequest(ValueError):
    """The request cannot become a trigger; the message is the 400's detail."""


def parse_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """ASGI headers as a dict with lower-case names; repeated headers joined with ", "."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in raw:
        # ASGI servers already lower-case names; lower() again costs nanoseconds and keeps the
        # contract ("header names are lower-case") independent of the server.
        name = raw_name.decode("latin-1").lower()
        try:
            value = raw_value.decode()
        except UnicodeDecodeError:
            # Not UTF-8: latin-1 maps every byte, so nothing the sender sent is lost.
            value = raw_value.decode("latin-1")
        previous = headers.get(name)
        headers[name] = value if previous is None else f"{previous}, {value}"
    return headers


def redact(headers: dict[str, str], names: frozenset[str]) -> None:
    """Replace, in place, the values of the named headers (lower-case) with a marker."""
    for name in names:
        if name in headers:
            headers[name] = REDACTED


def parse_query(query_string: bytes) -> dict[str, Any]:
    """The query string as an object; a repeated key becomes a list of its values."""
    if not query_string:
        return {}
    return _pairs_to_object(
        parse_qsl(query_string.decode(errors="replace"), keep_blank_values=True, errors="replace")
    )


def parse_body(body: bytes, content_type: str | None) -> Any:
    """The body as the run sees it, chosen by content type.

    JSON types (`application/json`, `*+json`) → the parsed value (malformed → MalformedRequest);
    `application/x-www-form-urlencoded` → an object; `text/*` → a string; empty → None; anything
    else (binary, multipart) → `{content_type, encoding: "base64", data, size}`.
    """
    if not body:
        return None
    media, charset = _media_type(content_type)
    if media == "application/json" or media.endswith("+json"):
        return _parse_json(body, charset)
    if media == "application/x-www-form-urlencoded":
        return _parse_form(body, charset or "utf-8")
    if media.startswith("text/"):
        return _decode_text(body, charset or "utf-8")
    return {
        "content_type": content_type or "application/octet-stream",
        "encoding": "base64",
        "data": base64.b64encode(body).decode("ascii"),
        "size": len(body),
    }


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """(`type/subtype` lower-cased, charset parameter or None)."""
    if not content_type:
        return "", None
    media, _, params = content_type.partition(";")
    charset = None
    if params:
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset":
                charset = value.strip().strip('"').lower() or None
    return media.strip().lower(), charset


def _parse_json(body: bytes, charset: str | None) -> Any:
    # orjson is strict RFC 8259 (no NaN, no lone surrogates: PostgreSQL's jsonb would refuse
    # both later) and several times faster than the standard library. Integers beyond 64 bits
    # become floats, as in JavaScript senders and n8n (docs/webhooks.md says so).
    if not charset or charset in ("utf-8", "utf8"):
        text: bytes | str = body
    else:
        text = _decode(body, charset, "JSON")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"malformed JSON body: {exc}") from None


def _decode(body: bytes, charset: str, kind: str) -> str:
    # `bytes.decode` refuses codecs that are not text encodings (base64, zlib, rot13...) with a
    # LookupError, and some text codecs (idna) raise UnicodeError rather than a decode error.
    try:
        return body.decode(charset)
    except LookupError:
        raise MalformedRequest(f"malformed {kind} body: unknown charset {charset!r}") from None
    except ValueError:  # UnicodeError, or a NUL in the charset name
        raise MalformedRequest(f"malformed {kind} body: not valid {charset}") from None


def _parse_form(body: bytes, charset: str) -> dict[str, Any]:
    text = _decode(body, charset, "form")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, encoding=charset, errors="replace")
    except ValueError:  # a codec without the "replace" handler (idna) on a %-escape
        raise MalformedRequest(f"malformed form body: not valid {charset}") from None
    return _pairs_to_object(pairs)


def _decode_text(body: bytes, charset: str) -> str:
    # A text body is kept whatever its bytes: a wrong charset label should not lose the event.
    try:
        return body.decode(charset, errors="replace")
    except (LookupError, ValueError):  # unknown, not a text codec, or no "replace" handler
        return body.decode("utf-8", errors="replace")


def _pairs_to_object(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        previous = result.get(key)
        if previous is None:
            result[key] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            result[key] = [previous, value]
    return result
