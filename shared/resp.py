"""Redis commands as RESP bytes, by redis-py's own encoding rules (packed once, sent raw)."""

from __future__ import annotations

Encodable = bytes | str | int | float


def encode(value: Encodable) -> bytes:
    """One argument as Redis receives it, by redis-py's own rules (str is UTF-8, numbers repr)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        raise TypeError("Redis has no booleans; send an int or a string")
    if isinstance(value, int | float):
        return repr(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def bulk(value: bytes) -> bytes:
    """A RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def pack(*args: Encodable) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(encode(arg)) for arg in args)
