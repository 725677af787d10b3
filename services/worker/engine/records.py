"""What a step record may contain: secrets redacted, oversize payloads truncated, valid JSONB.

Payloads are encoded once here (orjson) and embedded as-is in the statement that writes the
steps, so measuring a payload's size costs no second serialisation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import orjson

# The rule lives in shared/ so the workflows service's view of a queued run redacts alike.
from shared.redaction import REDACTED as REDACTED
from shared.redaction import redact as redact

_PREVIEW_BYTES = 1024
_NUL_ESCAPE = b"\\u0000"


def _strip_nul(value: Any) -> Any:
    # PostgreSQL's jsonb cannot store U+0000; the record keeps the rest of the string.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, Mapping):
        return {_strip_nul(key): _strip_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_nul(item) for item in value]
    return value


def encode_json(value: Any) -> bytes:
    """Encode `value` as JSON PostgreSQL accepts: non-JSON types as strings, no NUL, NaN → null.

    Integers beyond 64 bits (a template can compute `2 ** 70`) are written exactly (jsonb keeps
    them); nesting deeper than orjson's limit is written too, up to Python's recursion limit.
    """
    try:
        encoded = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        return _encode_portable(value)
    if _NUL_ESCAPE in encoded:
        encoded = orjson.dumps(_strip_nul(value), default=str, option=orjson.OPT_NON_STR_KEYS)
    return encoded


# Python refuses to print integers of more digits (sys.int_info.default_max_str_digits).
_MAX_INT_BITS = 14_000


def _portable(value: Any) -> Any:
    # The orjson rules, for the standard library encoder: NaN → null, keys as strings, no NUL.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if value.bit_length() <= _MAX_INT_BITS else f"<{value.bit_length()}-bit int>"
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {_key(key): _portable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_portable(item) for item in value]
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    return str(_portable(key))


def _encode_portable(value: Any) -> bytes:
    try:
        text = json.dumps(_portable(value), ensure_ascii=False, separators=(",", ":"))
    except RecursionError:
        raise ValueError("value nested too deeply to record as JSON") from None
    return text.encode()


def record_payload(value: Any, max_bytes: int) -> orjson.Fragment:
    """Encode a step payload for the record, replaced by a marker when larger than `max_bytes`.

    The marker is `{"truncated": true, "size": <bytes>, "preview": "<first bytes of the JSON>"}`.
    """
    encoded = encode_json(value)
    if len(encoded) <= max_bytes:
        return orjson.Fragment(encoded)
    preview = encoded[: min(_PREVIEW_BYTES, max_bytes)].decode("utf-8", errors="ignore")
    return orjson.Fragment(
        orjson.dumps({"truncated": True, "size": len(encoded), "preview": preview})
    )
