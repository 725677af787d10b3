"""The lean Redis pool against a real Redis: replies, errors, deadlines, stale connections."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from scripts.localinfra import RedisServer
from services.ingest.leanredis import LeanRedis, TransactionFailed, pack
from tests.fixtures.servers import Infra


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", durable=False).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


class TestCommands:
    async def test_call_returns_the_reply(self, infra: Infra) -> None:
        lean = LeanRedis(infra.redis_url)
        await lean.call("SET", "lean:k", "v")
        assert await lean.call("GET", "lean:k") == b"v"
        assert await lean.call("GET", "lean:missing") is None
        await lean.aclose()

    async def test_error_reply_raises(self, infra: Infra) -> None:
        lean = LeanRedis(infra.redis_url)
        with pytest.raises(ResponseError):
            await lean.call("NOSUCHCOMMAND")
        assert await lean.call("PING") in (b"PONG", "PONG", True)  # the pool still works
        await lean.aclose()

    async def test_transaction_applies_all_in_one_round_trip(self, infra: Infra) -> None:
        lean = LeanRedis(infra.redis_url)
        results = await lean.transaction((pack("SET", "lean:a", 1), pack("INCR", "lean:a")), 2)
        assert results[1] == 2
        await lean.aclose()

    async def test_failed_command_inside_transaction_raises(self, infra: Infra) -> None:
        lean = LeanRedis(infra.redis_url)
        await lean.call("SET", "lean:str", "text")
        with pytest.raises(TransactionFailed):
            await lean.transaction((pack("INCR", "lean:str"),), 1)
        await lean.aclose()


class TestFailures:
    async def test_frozen_redis_hits_the_deadline(self, own_redis: RedisServer) -> None:
        lean = LeanRedis(own_redis.url, deadline_s=0.5)
        await lean.ping()
        assert own_redis.proc is not None
        own_redis.proc.send_signal(signal.SIGSTOP)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await lean.ping()
        assert time.monotonic() - start < 1.5
        own_redis.proc.send_signal(signal.SIGCONT)
        await lean.ping()  # the timed-out connection was dropped, not reused
        await lean.aclose()

    async def test_connection_closed_while_idle_is_replaced(self, own_redis: RedisServer) -> None:
        lean = LeanRedis(own_redis.url)
        await lean.ping()
        own_redis.stop()
        own_redis.start()  # same port; our idle connection is now dead
        assert await lean.call("SET", "lean:after", "restart") in (b"OK", "OK", True)
        await lean.aclose()

    async def test_redis_down_raises_quickly(self, own_redis: RedisServer) -> None:
        lean = LeanRedis(own_redis.url)
        own_redis.stop()
        start = time.monotonic()
        with pytest.raises((RedisConnectionError, TimeoutError)):
            await lean.ping()
        assert time.monotonic() - start < 2.5
        await lean.aclose()
