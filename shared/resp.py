"""Redis commands as RESP bytes, by redis-py's own encoding rules (packed once, sent raw).

A command can also travel as arguments of a script (`arguments`), which runs it with
`RUN_COMMANDS`: a producer that must decide and store in one atomic step (a dedupe claim and
its job) sends both in one EVAL instead of a claim first and a MULTI after it.
"""

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


def arguments(*args: Encodable) -> bytes:
    """One command as script arguments (bulk strings): its argument count, then its arguments."""
    return bulk(b"%d" % len(args)) + b"".join(bulk(encode(arg)) for arg in args)


# Lua: `run_commands(i)` runs the commands that `arguments` packed into ARGV[i], ARGV[i+1], ...
# An error reply of one of them aborts the script there (Redis undoes nothing already run).
RUN_COMMANDS = """
local function run_commands(first)
  local i = first
  while i <= #ARGV do
    local count = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + count))
    i = i + count + 1
  end
end
"""
