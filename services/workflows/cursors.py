"""Opaque keyset cursors for the paginated lists.

A cursor is the sort key of the last item of a page, JSON-encoded and base64url'd: opaque to
clients (they must not build one), stable under inserts (no offset drift), and O(log n) to
resume from with the list's index.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from fastapi import HTTPException


class InvalidCursor(Exception):
    """The cursor was not produced by this service."""


def encode_cursor(key: list[Any]) -> str:
    """Encode a page's last sort key."""
    return base64.urlsafe_b64encode(orjson.dumps(key)).rstrip(b"=").decode()


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The sort key inside `cursor` (a list of `length` values); raises InvalidCursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise InvalidCursor(cursor) from None
    if not isinstance(key, list) or len(key) != length:
        raise InvalidCursor(cursor)
    return key


def invalid_cursor() -> HTTPException:
    """The 422 for a cursor we did not issue, shaped like FastAPI's own validation errors."""
    # A literal: starlette renamed the 422 constant between the releases we accept.
    return HTTPException(
        422,
        [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}],
    )
