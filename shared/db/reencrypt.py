"""`python -m shared.db reencrypt`: seal every credential and webhook secret under the newest key.

Key rotation: put a new key first in `AUTOMATEOS_ENCRYPTION_KEYS` (keeping the old ones after
it), roll the services, run this, then drop the old keys. Values are opened with whichever key
sealed them and sealed again under the newest; the webhook routing records in Redis get the
re-sealed secret too (only when they still describe the same workflow version), so ingest
never holds a value only an old key opens. Idempotent: run it again after a failure.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from shared.crypto import Keyring, credential_context, hook_secret_context, is_sealed
from shared.hooks import hook_key

_BATCH = 200
_CREDENTIALS = text(
    "SELECT id, data FROM credentials WHERE id > :after ORDER BY id LIMIT :limit FOR UPDATE"
)
_SET_CREDENTIAL = text("UPDATE credentials SET data = :data WHERE id = :id")
_SIGNED = text(
    """
    SELECT id, version, trigger, webhook_token_hash FROM workflows
    WHERE id > :after AND trigger -> 'signature' ->> 'secret' IS NOT NULL
    ORDER BY id LIMIT :limit FOR UPDATE
    """
)
_SET_TRIGGER = text("UPDATE workflows SET trigger = CAST(:trigger AS jsonb) WHERE id = :id")
# KEYS[1] the routing record; ARGV[1] workflow id, ARGV[2] version, ARGV[3] the sealed secret.
_RESEAL_RECORD = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, record = pcall(cjson.decode, raw)
if not ok or type(record) ~= 'table' or type(record['signature']) ~= 'table' then return 0 end
if record['workflow_id'] ~= ARGV[1] or tonumber(record['version']) ~= tonumber(ARGV[2]) then
  return 0
end
record['signature']['secret'] = ARGV[3]
record['sealed'] = true
redis.call('SET', KEYS[1], cjson.encode(record))
return 1
"""


@dataclass
class Reencrypted:
    """How many values were sealed again."""

    credentials: int = 0
    webhook_secrets: int = 0
    redis_records: int = 0


async def _credentials(conn: AsyncConnection, keyring: Keyring, done: Reencrypted) -> None:
    after = uuid.UUID(int=0)
    while True:
        async with conn.begin():
            rows = (await conn.execute(_CREDENTIALS, {"after": after, "limit": _BATCH})).all()
            for row in rows:
                sealed = keyring.reseal(row.data, credential_context(str(row.id)))
                if sealed is not None:
                    await conn.execute(_SET_CREDENTIAL, {"id": row.id, "data": sealed})
                    done.credentials += 1
        if not rows:
            return
        after = rows[-1].id


async def _secrets(
    conn: AsyncConnection, client: aioredis.Redis, keyring: Keyring, done: Reencrypted
) -> None:
    set_record = client.register_script(_RESEAL_RECORD)
    after = uuid.UUID(int=0)
    while True:
        published: list[tuple[Any, str]] = []
        async with conn.begin():
            rows = (await conn.execute(_SIGNED, {"after": after, "limit": _BATCH})).all()
            for row in rows:
                secret = row.trigger["signature"]["secret"]
                context = hook_secret_context(str(row.id))
                sealed = (
                    keyring.reseal(secret, context)
                    if is_sealed(secret)
                    else keyring.seal(secret.encode(), context)
                )
                if sealed is None:
                    continue
                trigger = {**row.trigger, "signature": {**row.trigger["signature"]}}
                trigger["signature"]["secret"] = sealed
                await conn.execute(_SET_TRIGGER, {"id": row.id, "trigger": json.dumps(trigger)})
                published.append((row, sealed))
                done.webhook_secrets += 1
        # After the commit: Redis never holds a value PostgreSQL does not.
        for row, sealed in published:
            done.redis_records += int(
                await set_record(
                    keys=[hook_key(row.webhook_token_hash)],
                    args=[str(row.id), row.version, sealed],
                )
            )
        if not rows:
            return
        after = rows[-1].id


async def reencrypt(database_url: str, redis_url: str, keyring: Keyring) -> Reencrypted:
    """Seal every stored secret under `keyring`'s newest key; return the counts."""
    done = Reencrypted()
    engine = create_async_engine(database_url)
    client = aioredis.Redis.from_url(redis_url)
    try:
        async with engine.connect() as conn:
            await _credentials(conn, keyring, done)
            await _secrets(conn, client, keyring, done)
    finally:
        await client.aclose()
        await engine.dispose()
    return done
