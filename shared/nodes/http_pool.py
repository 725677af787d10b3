"""The nodes' HTTP connection pool: httpcore's own, with its bookkeeping made linear.

httpcore 1.0.9 re-examines every pooled connection whenever a request starts or a response ends
(`_assign_requests_to_connections`). Its keep-alive check counts all the pool's connections once
per idle one (quadratic), and compares that count, busy connections included, with
`max_keepalive_connections`: past 20 connections, an idle one is closed the moment it is free,
so 32 calls in flight per worker process kept opening new connections. Each idle connection's
expiry check also builds anyio's whole table of socket attributes to find the socket. Profiled
on the I/O-bound bench run, that bookkeeping (with httpcore's failed `import sniffio` on every
lock, fixed by depending on sniffio) cost the worker more CPU than the rest of the run.

`LinearConnectionPool` overrides that one method with a single pass that keeps httpcore's
decisions (reuse an available connection of the origin, else open one below
`max_connections`, else replace an idle one) but counts only idle connections against the
keep-alive limit, and checks an idle connection's expiry (a system call) only when it is about
to be reused, as the httpx2 fork does; `CheapReadability` answers that check from the socket it
keeps. The fix is upstream as encode/httpcore#1035 (open).

What this does not do: an idle connection whose server closed it, or whose keep-alive expired,
stays open on our side until it is next picked, trimmed as surplus or the pool closes (at most
`max_keepalive_connections` of them, 20). The method is private, so httpcore is pinned to 1.0.x
(pyproject.toml) and tests/shared/nodes/test_http_pool.py checks the behaviour through the
public client.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import httpcore
from httpcore._async.interfaces import AsyncConnectionInterface
from httpcore._utils import is_socket_readable


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool, with one linear pass to assign queued requests (see the module)."""

    def _assign_requests_to_connections(self) -> list[AsyncConnectionInterface]:
        closing: list[AsyncConnectionInterface] = []
        kept: list[AsyncConnectionInterface] = []
        idle: list[AsyncConnectionInterface] = []
        for connection in self._connections:
            if connection.is_closed():
                continue
            if connection.is_idle():
                # Its expiry costs a system call: it is checked when the connection is about
                # to be reused instead (`_reusable`).
                idle.append(connection)
            elif connection.has_expired():
                closing.append(connection)
                continue
            kept.append(connection)
        surplus = len(idle) - self._max_keepalive_connections
        if surplus > 0:
            # The longest-pooled idle connections go first, as in httpcore.
            dropped = {id(connection) for connection in idle[:surplus]}
            closing += idle[:surplus]
            kept = [connection for connection in kept if id(connection) not in dropped]
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            reusable = self._reusable(kept, origin, closing)
            if reusable is not None:
                pool_request.assign_to_connection(reusable)
                continue
            if len(kept) >= self._max_connections:
                spare = next((c for c in kept if c.is_idle()), None)
                if spare is None:
                    continue  # stays queued until a connection frees up
                kept.remove(spare)
                closing.append(spare)
            connection = self.create_connection(origin)
            kept.append(connection)
            pool_request.assign_to_connection(connection)
        return closing

    @staticmethod
    def _reusable(
        kept: list[AsyncConnectionInterface],
        origin: httpcore.Origin,
        closing: list[AsyncConnectionInterface],
    ) -> AsyncConnectionInterface | None:
        """The first connection that can take a request to `origin`; expired idle connections
        met on the way are moved from `kept` to `closing`."""
        for connection in list(kept):
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.is_idle() and connection.has_expired():
                kept.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


class CheapReadability(httpcore.AsyncNetworkStream):
    """A network stream that answers httpcore's "is_readable" from the socket it keeps."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's signature
    ) -> httpcore.AsyncNetworkStream:
        return CheapReadability(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            return is_socket_readable(self._socket)
        return self._stream.get_extra_info(info)
