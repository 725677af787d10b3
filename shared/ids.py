"""Time-ordered identifiers.

Run ids are UUIDv7 (RFC 9562): sortable by creation time, so "newest first" pagination can use the
primary key, and unguessable enough in their 74 random bits to be handed out in a 202.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, version and variant bits, 74 random bits."""
    return _pack(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7_for(unix_ms: int, seed: bytes) -> uuid.UUID:
    """A UUIDv7 whose time is `unix_ms` and whose random bits derive from `seed`.

    Deterministic: a schedule tick's run id is the same on every scheduler replica, so a tick
    handled twice (a replica dying mid-tick) names one run, never two.
    """
    return _pack(unix_ms, int.from_bytes(hashlib.sha256(seed).digest()[:10], "big"))


def _pack(unix_ms: int, rand: int) -> uuid.UUID:
    # RFC 9562 layout: 48-bit time, version 7, 12 random bits, variant 0b10, 62 random bits.
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
