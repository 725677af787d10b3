"""The nodes' connection pool (shared/nodes/http_pool.py) through the public client: concurrent
calls keep their connections, the keep-alive limit counts idle connections only, and a
connection the server closed is never reused. The server is a bare asyncio one in this test's
loop, so it can count the TCP connections it accepts and see them close."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from tests.shared.nodes.local_http import loopback_client

CONCURRENCY = 32
KEEPALIVE = 20  # build_http_client's max_keepalive_connections


@dataclass
class CountingServer:
    """HTTP/1.1 keep-alive answers after `delay_s`; counts connections accepted and open."""

    delay_s: float = 0.02
    close_after_answer: bool = False
    accepted: int = 0
    open: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open += 1
        try:
            while True:
                try:
                    await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                await asyncio.sleep(self.delay_s)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
                if self.close_after_answer:
                    # Without `Connection: close`: the client learns it only from the socket.
                    return
        finally:
            self.open -= 1
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[CountingServer, str]]:
    counting = CountingServer()
    listener = await asyncio.start_server(counting.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    async with listener:
        yield counting, f"http://127.0.0.1:{port}/"
        listener.close()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = loopback_client()  # build_http_client, its egress policy letting 127.0.0.1 through
    yield client
    await client.aclose()


async def _wave(http: httpx.AsyncClient, url: str, count: int) -> None:
    answers = await asyncio.gather(*(http.get(url) for _ in range(count)))
    assert {answer.status_code for answer in answers} == {200}


async def _until(condition: Callable[[], bool], deadline_s: float = 5.0) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and not condition():
        await asyncio.sleep(0.02)


async def test_concurrent_callers_keep_their_connections(
    server: tuple[CountingServer, str], http: httpx.AsyncClient
) -> None:
    counting, url = server

    async def caller() -> None:
        for _ in range(5):
            await _wave(http, url, 1)

    # 32 calls in flight all the time, as 32 runs of a worker process calling one API.
    await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))
    # 32 for the first calls, and 12 again when the callers, started together, all finished
    # together (the keep-alive limit trims 32 idle to 20): 44 here. httpcore's own pool closes
    # every connection past 20 the moment it is free: 108 to 137 under the same load.
    assert counting.accepted < 2 * CONCURRENCY


async def test_idle_connections_beyond_the_keep_alive_limit_are_closed(
    server: tuple[CountingServer, str], http: httpx.AsyncClient
) -> None:
    counting, url = server
    await _wave(http, url, CONCURRENCY)
    # As the answers come back, the pool trims its idle connections to the limit, no further.
    await _until(lambda: counting.open <= KEEPALIVE)
    await asyncio.sleep(0.1)
    assert counting.open == KEEPALIVE
    await _wave(http, url, KEEPALIVE)
    assert counting.accepted == CONCURRENCY


async def test_a_connection_the_server_closed_is_not_reused(
    server: tuple[CountingServer, str], http: httpx.AsyncClient
) -> None:
    counting, url = server
    counting.close_after_answer = True
    for _ in range(3):
        await _wave(http, url, 1)
        await _until(lambda: counting.open == 0)
    assert counting.accepted == 3


async def test_calls_one_after_another_share_one_connection(
    server: tuple[CountingServer, str], http: httpx.AsyncClient
) -> None:
    counting, url = server
    for _ in range(10):
        await _wave(http, url, 1)
    assert counting.accepted == 1
