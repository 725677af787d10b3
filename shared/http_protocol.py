"""uvicorn's httptools protocol with the limits it lacks: head size and count, read deadlines.

uvicorn (with httptools) accepts request heads of any size and any number of header fields, and
keeps a connection that sends half a request open for as long as the client likes: 30 MiB of
headers were accepted, and 200 half-sent requests held a service's connections for minutes. So
every HTTP service runs this protocol (shared/serve.py):

- the request line and headers together at most `http_max_header_bytes`, at most
  `http_max_headers` fields: 431 and the connection closed, before any of it reaches the app;
- the head must arrive within `http_head_timeout_seconds` of the connection opening or of its
  first byte (a keep-alive connection idles under uvicorn's own keep-alive timeout), the body
  within `http_body_timeout_seconds` of the head: 408 and the connection closed.

It subclasses uvicorn's protocol (the callbacks httptools calls), so pyproject.toml pins
uvicorn's minor version; tests/services/test_limits.py proves each limit on the real services.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shared.settings import get_settings

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    head_timeout_s: float
    body_timeout_s: float


@cache
def http_limits() -> HttpLimits:
    """The limits of this process, from the settings."""
    settings = get_settings()
    return HttpLimits(
        settings.http_max_header_bytes,
        settings.http_max_headers,
        settings.http_head_timeout_seconds,
        settings.http_body_timeout_seconds,
    )


def _response(status: int, detail: str) -> bytes:
    body = b'{"detail":"' + detail.encode() + b'"}'
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """One connection; the limits are counted per request on it."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = http_limits()
        self._in_head = True  # the next bytes belong to a request line or headers
        self._raw_head_bytes = 0  # bytes received while in a head (bounds httptools' buffer)
        self._head_bytes = 0  # request line + header names and values, as parsed
        self._header_count = 0
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False

    # --- deadlines -------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        cycle = self.cycle
        # Answer only where no response is on the wire: a late head after the last response
        # (or the first), a late body before the app answered. Otherwise just close.
        if cycle is None:
            respond = True
        elif self._in_head:
            respond = cycle.response_complete
        else:
            respond = not cycle.response_started
        self._refuse(408, "request not received in time", respond=respond)

    def _refuse(self, status: int, detail: str, *, respond: bool = True) -> None:
        """Answer `status` (unless a response is under way) and close the connection."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # The app may still be waiting for this body: it reads a disconnect, and anything
            # it sends now is dropped instead of following our answer on the wire.
            cycle.disconnected = True
            cycle.message_event.set()
        if respond:
            self.transport.write(_response(status, detail))
        self.transport.close()

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self._limits.head_timeout_s)  # a connection that never sends is dropped too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._in_head:
            self._raw_head_bytes += len(data)
        super().data_received(data)
        # httptools buffers a header value until it ends: stop a never-ending one here.
        overflow = self._raw_head_bytes > self._limits.max_header_bytes
        if self._in_head and overflow and not self._refused:
            self._refuse(431, "request headers too large")

    # --- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._header_count = 0
        if self._deadline is None:
            self._arm(self._limits.head_timeout_s)

    def on_url(self, url: bytes) -> None:
        if self._refused:
            return
        self._head_bytes += len(url)
        if self._head_bytes > self._limits.max_header_bytes:
            self._refuse(431, "request line too long")
            return
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        self._head_bytes += len(name) + len(value) + 4  # ": " and CRLF, as sent
        if self._header_count > self._limits.max_headers:
            self._refuse(431, "too many request headers")
            return
        if self._head_bytes > self._limits.max_header_bytes:
            self._refuse(431, "request headers too large")
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        self._in_head = False
        self._raw_head_bytes = 0
        self._arm(self._limits.body_timeout_s)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._disarm()
        super().on_message_complete()
        self._in_head = True
        self._raw_head_bytes = 0
