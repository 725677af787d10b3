"""The token cache: what it serves, for how long, and how big it may grow (real Redis)."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator

import pytest

from services.ingest.hooks.resolver import HookLookupFailed, HookResolver
from services.ingest.leanredis import LeanRedis
from shared.hooks import HookRecord, encode_record, hook_key, token_hash
from tests.fixtures.servers import Infra


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Workflows:
    """The fallback: counts lookups, knows nothing unless told."""

    def __init__(self) -> None:
        self.records: dict[str, HookRecord] = {}
        self.calls = 0
        self.down = False

    async def fetch(self, hashed: str) -> HookRecord | None:
        self.calls += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise HookLookupFailed("down")
        return self.records.get(hashed)


def _record(active: bool = True) -> HookRecord:
    return {
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "version": 1,
        "active": active,
        "signature": None,
    }


@pytest.fixture
async def lean(infra: Infra) -> AsyncIterator[LeanRedis]:
    client = LeanRedis(infra.redis_url)
    yield client
    await client.aclose()


async def _publish(lean: LeanRedis, token: str, record: HookRecord) -> None:
    await lean.call("SET", hook_key(token_hash(token)), encode_record(record))


class TestCache:
    async def test_serves_a_record_until_its_ttl(self, lean: LeanRedis) -> None:
        clock, token = Clock(), secrets.token_urlsafe(32)
        await _publish(lean, token, _record())
        resolver = HookResolver(lean, Workflows().fetch, 0.5, clock=clock)
        assert (await resolver.resolve(token)) is not None
        await _publish(lean, token, _record(active=False))
        hook = await resolver.resolve(token)
        assert hook is not None
        assert hook.active
        clock.now += 0.5
        hook = await resolver.resolve(token)
        assert hook is not None
        assert not hook.active

    async def test_unknown_is_cached_too(self, lean: LeanRedis) -> None:
        clock, workflows = Clock(), Workflows()
        resolver = HookResolver(lean, workflows.fetch, 0.5, clock=clock)
        token = secrets.token_urlsafe(32)
        assert await resolver.resolve(token) is None
        assert await resolver.resolve(token) is None
        assert workflows.calls == 1
        clock.now += 0.6
        await resolver.resolve(token)
        assert workflows.calls == 2

    async def test_outage_is_not_cached(self, lean: LeanRedis) -> None:
        workflows = Workflows()
        workflows.down = True
        resolver = HookResolver(lean, workflows.fetch, 0.5, clock=Clock())
        token = secrets.token_urlsafe(32)
        with pytest.raises(HookLookupFailed):
            await resolver.resolve(token)
        workflows.down = False
        workflows.records[token_hash(token)] = _record()
        assert await resolver.resolve(token) is not None

    async def test_concurrent_misses_share_one_lookup(self, lean: LeanRedis) -> None:
        workflows = Workflows()
        token = secrets.token_urlsafe(32)
        workflows.records[token_hash(token)] = _record()
        resolver = HookResolver(lean, workflows.fetch, 0.5, clock=Clock())
        hooks = await asyncio.gather(*(resolver.resolve(token) for _ in range(100)))
        assert all(hook is not None for hook in hooks)
        assert workflows.calls == 1

    async def test_size_is_bounded(self, lean: LeanRedis) -> None:
        resolver = HookResolver(lean, Workflows().fetch, 60, max_entries=3, clock=Clock())
        for _ in range(10):
            await resolver.resolve(secrets.token_urlsafe(32))
        assert len(resolver._entries) == 3

    async def test_token_that_cannot_be_ours_costs_no_lookup(self, lean: LeanRedis) -> None:
        workflows = Workflows()
        resolver = HookResolver(lean, workflows.fetch, 0.5, clock=Clock())
        assert await resolver.resolve("not a token!") is None
        assert await resolver.resolve("x" * 257) is None
        assert workflows.calls == 0
