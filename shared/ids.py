"""Time-ordered identifiers.

Run ids are UUIDv7 (RFC 9562): sortable by creation time, so "newest first" pagination can use the
primary key, and unguessable enough in their 74 random bits to be handed out in a 202.
"""

from __future__ import annotations

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, version and variant bits, 74 random bits."""
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def uuid7_floor(unix_ms: int) -> uuid.UUID:
    """The smallest UUIDv7 of that millisecond: `id >= uuid7_floor(t)` selects ids made from t
    on, so a time window over runs is a range scan on their primary key index."""
    return uuid.UUID(int=((unix_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | (0b10 << 62))
