"""A lean Redis pool for ingest's hot path: pre-packed commands on redis-py connections.

Measured on the development machine (loopback, one GET): redis-py 8's pooled client ≈ 250 µs of
Python per call, a redis-py connection used directly with a per-call socket timeout ≈ 100 µs,
and the same connection with no socket timeout inside one `asyncio.timeout` ≈ 40 µs, the cost
of a bare asyncio stream. The pooled client pays for locks, a readiness probe of the socket and
observability hooks on every checkout, and `asyncio.wait_for` (a new task) on every write.

So ingest keeps redis-py for what it does well (connecting from any URL: auth, TLS, database,
RESP parsing) and does the rest itself: a LIFO list of idle connections bounded by a semaphore,
commands packed to RESP bytes by the caller (a job is mostly constant bytes), and one deadline
per operation that covers waiting for a connection, connecting, writing and reading. A timed
out or failed connection is dropped, never reused with unread replies on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

# Re-exported: ingest packs its commands with them.
from shared.resp import Encodable as Encodable
from shared.resp import bulk as bulk
from shared.resp import encode as encode
from shared.resp import pack as pack

MULTI = pack("MULTI")
EXEC = pack("EXEC")
PING = pack("PING")


class TransactionFailed(ResponseError):
    """A command inside MULTI/EXEC failed; nothing of it may be assumed to be stored."""


class LeanRedis:
    """A small, bounded pool of connections that send pre-packed commands.

    Every operation either completes within `deadline_s` or raises (redis-py's ConnectionError,
    ResponseError, or TimeoutError); the caller never waits longer than that.
    """

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 64,
        deadline_s: float = 2.0,
        connect_timeout_s: float = 1.0,
    ) -> None:
        # Used only as a factory: from_url understands every URL form redis-py does.
        self._factory = aioredis.ConnectionPool.from_url(
            url,
            socket_connect_timeout=connect_timeout_s,
            # No per-read timeout: each operation runs under one asyncio.timeout instead.
            socket_timeout=None,
            # A retry would happen inside our deadline anyway; we retry stale connections below.
            retry=Retry(NoBackoff(), 0),
        )
        self._idle: list[AbstractConnection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self._deadline = deadline_s

    async def call(self, *args: Encodable) -> Any:
        """Run one command; its reply (an error reply raises ResponseError)."""
        (reply,) = await self.execute(pack(*args), 1)
        return reply

    async def transaction(self, commands: Iterable[bytes], count: int) -> list[Any]:
        """Run `count` packed commands in MULTI/EXEC, in one round trip; EXEC's replies.

        Raises TransactionFailed when any command was refused (nothing was applied then) or
        failed while executing.
        """
        replies = await self.execute(b"".join((MULTI, *commands, EXEC)), count + 2)
        results = replies[-1]
        if not isinstance(results, list):
            raise TransactionFailed(f"EXEC answered {results!r}")
        for result in results:
            if isinstance(result, Exception):
                raise TransactionFailed(str(result)) from result
        return results

    async def execute(self, packed: bytes, replies: int) -> list[Any]:
        """Send `packed` (RESP) and read `replies` replies, within the deadline."""
        async with asyncio.timeout(self._deadline):
            await self._slots.acquire()
            try:
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else self._new_connection()
                try:
                    return await self._roundtrip(connection, packed, replies)
                except (RedisConnectionError, OSError):
                    if not reused:
                        raise
                # Almost always a connection Redis closed while it sat idle (restart, idle
                # timeout), so the commands never ran and a fresh connection sends them again.
                # Should the link have broken after Redis ran them, the job id lands on the queue
                # twice: the queue contract allows a job to run twice (the run is keyed by run
                # id), and a re-sent dedupe claim reads back our own run id (see RunStore).
                return await self._roundtrip(self._new_connection(), packed, replies)
            finally:
                self._slots.release()

    def _new_connection(self) -> AbstractConnection:
        # Not connected yet: the first send connects, inside the operation's deadline.
        return self._factory.connection_class(**self._factory.connection_kwargs)

    async def _roundtrip(
        self, connection: AbstractConnection, packed: bytes, count: int
    ) -> list[Any]:
        try:
            await connection.send_packed_command(packed, check_health=False)
            replies = [await connection.read_response() for _ in range(count)]
        except BaseException:
            # Timed out, cancelled or refused half way: replies may still be in flight.
            await connection.disconnect(nowait=True)
            raise
        self._idle.append(connection)
        return replies

    async def ping(self) -> None:
        """Raise unless Redis answers PING within the deadline."""
        await self.execute(PING, 1)

    async def aclose(self) -> None:
        """Close every idle connection (in-flight ones close when their operation ends)."""
        idle, self._idle = self._idle, []
        for connection in idle:
            await connection.disconnect()
