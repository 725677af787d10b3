"""HookMirror's guarded writes against a real Redis: the ordering rules the API relies on."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from services.workflows.hooks.service import HookMirror
from shared.hooks import HookRecord, decode_record, encode_record, hook_key
from tests.fixtures.servers import Infra


@pytest.fixture
async def mirror(infra: Infra) -> AsyncIterator[HookMirror]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield HookMirror(client)
    await client.aclose()


def _record(version: int, active: bool = True) -> HookRecord:
    return {
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "version": version,
        "active": active,
        "signature": None,
    }


async def _stored_version(mirror: HookMirror, hashed: str) -> int | None:
    raw = await mirror.client.get(hook_key(hashed))
    record = decode_record(raw) if raw is not None else None
    return None if record is None else record["version"]


class TestPublish:
    async def test_writes_when_absent(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        assert await mirror.publish(hashed, _record(1)) is True
        assert await _stored_version(mirror, hashed) == 1

    async def test_newer_version_overwrites(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        await mirror.publish(hashed, _record(1))
        assert await mirror.publish(hashed, _record(2)) is True
        assert await _stored_version(mirror, hashed) == 2

    async def test_older_version_arriving_late_is_ignored(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        await mirror.publish(hashed, _record(3, active=False))
        assert await mirror.publish(hashed, _record(2, active=True)) is False
        raw = await mirror.client.get(hook_key(hashed))
        assert raw is not None
        record = decode_record(raw)
        assert record is not None
        assert (record["version"], record["active"]) == (3, False)

    async def test_corrupt_record_is_replaced(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        await mirror.client.set(hook_key(hashed), b"not json")
        assert await mirror.publish(hashed, _record(1)) is True

    async def test_an_unsealed_record_of_the_same_version_is_replaced(
        self, mirror: HookMirror
    ) -> None:
        # A record from before encryption (plaintext secret, no `sealed`) must not outlive
        # the upgrade just because the version did not change.
        hashed = secrets.token_hex(32)
        await mirror.client.set(hook_key(hashed), encode_record(_record(2)))
        sealed: HookRecord = {**_record(2), "sealed": True}
        assert await mirror.publish(hashed, sealed) is True
        assert await mirror.publish(hashed, sealed) is False  # then the version guard holds

    async def test_batch_applies_the_same_guard(self, mirror: HookMirror) -> None:
        older, fresh = secrets.token_hex(32), secrets.token_hex(32)
        await mirror.publish(older, _record(5))
        written = await mirror.publish_many([(older, _record(4)), (fresh, _record(1))])
        assert written == 1
        assert await _stored_version(mirror, older) == 5
        assert await _stored_version(mirror, fresh) == 1


class TestRevoke:
    async def test_revoked_token_cannot_be_written_back(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        await mirror.publish(hashed, _record(1))
        await mirror.revoke(hashed)
        assert await mirror.client.get(hook_key(hashed)) is None
        # A write that was in flight when the token was rotated or deleted.
        assert await mirror.publish(hashed, _record(1)) is False
        assert await mirror.publish_many([(hashed, _record(9))]) == 0
        assert await mirror.client.get(hook_key(hashed)) is None

    async def test_invalidate_only_removes(self, mirror: HookMirror) -> None:
        hashed = secrets.token_hex(32)
        await mirror.publish(hashed, _record(1))
        await mirror.invalidate(hashed)
        assert await mirror.client.get(hook_key(hashed)) is None
        assert await mirror.publish(hashed, _record(2)) is True
