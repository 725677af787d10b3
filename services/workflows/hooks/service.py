"""The Redis mirror of webhook routing records, which lets ingest accept without PostgreSQL.

PostgreSQL is the truth; Redis holds `automateos:hook:<token sha256>` -> HookRecord. Writes race
(two updates commit in one order and reach Redis in the other; the start-up mirror reads a row
that changes right after), so every write goes through a Lua script that keeps the record with
the higher version. A rotated or deleted token's key is deleted *and* fenced by a short-lived
"revoked" marker the script honours, so a late write of the old record cannot bring a revoked
URL back to life.

Changes that can revoke access (deactivation, a new secret, rotation, deletion) take the old
record out of Redis *before* their commit: if Redis cannot be reached the change is refused
(503) rather than acknowledged while ingest keeps accepting under the old rules. After the
commit the new record is written; if that write fails, ingest misses and asks
`GET /internal/hooks/<hash>`, which answers from PostgreSQL and repairs the mirror.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.workflows.workflows.repository import WorkflowRepository
from shared.db.engine import session_scope
from shared.db.models import Workflow
from shared.hooks import HookRecord, SignatureConfig, encode_record, hook_key

log = logging.getLogger(__name__)

REVOKED_KEY_PREFIX = "automateos:hook-revoked:"
# Far longer than any write can be in flight (they follow their commit by milliseconds).
REVOKED_TTL_SECONDS = 24 * 3600

# KEYS[1] the record, KEYS[2] its revoked marker; ARGV[1] the record JSON, ARGV[2] its version.
# A record of the same version is kept unless it is an unsealed one from before encryption
# (then the start-up mirror replaces its plaintext secret with the sealed one).
_GUARDED_SET = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' then
    local version = tonumber(stored['version'])
    local wanted = tonumber(ARGV[2])
    if version and version > wanted then return 0 end
    if version and version == wanted and stored['sealed'] == true then return 0 end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
"""


def revoked_key(hashed: str) -> str:
    return REVOKED_KEY_PREFIX + hashed


def hook_record(workflow: Workflow) -> HookRecord:
    """The routing record of a workflow, its secret sealed (only ingest opens it)."""
    stored = workflow.trigger.get("signature")
    signature: SignatureConfig | None = None
    if stored:
        signature = {"scheme": stored["scheme"], "secret": stored["secret"]}
        if stored.get("header"):
            signature["header"] = stored["header"]
    record: HookRecord = {
        "workflow_id": str(workflow.id),
        "owner_id": str(workflow.owner_id),
        "version": workflow.version,
        "active": workflow.active,
        "sealed": True,
        "signature": signature,
    }
    # Only what a workflow sets: most records stay as small as before.
    if workflow.rate_limit:
        record["rate_limit"] = workflow.rate_limit  # type: ignore[typeddict-item]
    if workflow.flow:
        record["flow"] = workflow.flow
    return record


class HookMirror:
    """Writes, invalidates and revokes routing records in Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._guarded_set = client.register_script(_GUARDED_SET)

    async def publish(self, hashed: str, record: HookRecord) -> bool:
        """Write `record` unless Redis holds a newer one or the token was revoked.

        Returns whether it was written. Raises RedisError when Redis is unreachable.
        """
        written = await self._guarded_set(
            keys=[hook_key(hashed), revoked_key(hashed)],
            args=[encode_record(record), record["version"]],
        )
        return bool(written)

    async def publish_many(self, records: Sequence[tuple[str, HookRecord]]) -> int:
        """Guarded writes of many records in one round trip; returns how many were written."""
        if not records:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for hashed, record in records:
                await self._guarded_set(
                    keys=[hook_key(hashed), revoked_key(hashed)],
                    args=[encode_record(record), record["version"]],
                    client=pipe,
                )
            results = await pipe.execute()
        return sum(1 for written in results if written)

    async def invalidate(self, hashed: str) -> None:
        """Remove a record that is about to change, so no reader keeps acting on it."""
        await self.client.delete(hook_key(hashed))

    async def revoke(self, hashed: str) -> None:
        """Remove a record for good (rotation, deletion) and fence out late writes of it."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(revoked_key(hashed), b"1", ex=REVOKED_TTL_SECONDS)
            pipe.delete(hook_key(hashed))
            await pipe.execute()

    async def publish_after_commit(self, workflow: Workflow) -> None:
        """Publish a committed change; a failure is logged, not raised.

        The change is already committed, and a missing record only sends ingest to
        `/internal/hooks` (which repairs it), so the caller's response must not fail.
        """
        try:
            await self.publish(workflow.webhook_token_hash, hook_record(workflow))
        except RedisError as exc:
            log.warning(
                "routing record not mirrored to Redis; ingest will fall back to the API",
                extra={"workflow_id": str(workflow.id), "error": type(exc).__name__},
            )


async def mirror_all(
    sessions: async_sessionmaker[AsyncSession], mirror: HookMirror, batch_size: int = 500
) -> int:
    """Publish every workflow's record (idempotent; the version guard keeps newer ones)."""
    after = None
    written = 0
    while True:
        async with session_scope(sessions) as session:
            batch = await WorkflowRepository(session).batch(after, batch_size)
        if not batch:
            return written
        written += await mirror.publish_many(
            [(workflow.webhook_token_hash, hook_record(workflow)) for workflow in batch]
        )
        after = batch[-1].id


async def mirror_all_at_startup(
    sessions: async_sessionmaker[AsyncSession], mirror: HookMirror, max_backoff_s: float = 30
) -> None:
    """Run `mirror_all` until it completes once, backing off while PostgreSQL or Redis is down.

    Started as a background task so readiness never waits on a large table.
    """
    backoff = 0.5
    while True:
        try:
            written = await mirror_all(sessions, mirror)
        except Exception as exc:  # any outage: keep trying, the service stays up meanwhile
            log.warning(
                "mirroring routing records failed; retrying",
                extra={"error": f"{type(exc).__name__}: {exc}"[:300], "retry_in_s": backoff},
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff_s)
            continue
        log.info("routing records mirrored to Redis", extra={"written": written})
        return
