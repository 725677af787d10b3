"""A minimal HTTP/1.1 server for /healthz, /readyz and /metrics on the supervisor's loop.

The supervisor owns the process's signals and its event loop; a full ASGI server would want
both. Probes and scrapes need only GET with a small response, one per connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

Response = tuple[int, str, bytes]
Handler = Callable[[], Awaitable[Response]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
_REASONS[503] = "Service Unavailable"
_READ_TIMEOUT_S = 5.0  # for the whole request head, not per line: a slow client is dropped
_MAX_HEADER_LINES = 100
_MAX_LINE_BYTES = 8192  # a longer line is a 400 (StreamReader raises ValueError)


class ProbeServer:
    """Routes `GET <path>` to a handler returning (status, content type, body)."""

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = routes

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Bind and start serving (raises OSError when the port is taken)."""
        return await asyncio.start_server(self._handle, host, port, limit=_MAX_LINE_BYTES)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body = await self._respond(reader)
        except (TimeoutError, ValueError, ConnectionError, UnicodeDecodeError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        except Exception:
            log.exception("probe handler failed")
            status, content_type, body = 503, "text/plain", b"error\n"
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> Response:
        async with asyncio.timeout(_READ_TIMEOUT_S):
            request_line = await reader.readline()
            for _ in range(_MAX_HEADER_LINES):
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
            else:
                raise ValueError("too many header lines")
        method, target, _version = request_line.decode("ascii").split(" ", 2)
        handler = self.routes.get(target.split("?", 1)[0])
        if handler is None:
            return 404, "text/plain", b"not found\n"
        if method != "GET":
            return 405, "text/plain", b"method not allowed\n"
        return await handler()
