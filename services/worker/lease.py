"""A Redis lease: one replica of many does a singleton job (the scheduler, the pruner).

The holder renews well within the TTL; the others try to take it each time they would work.
When the holder dies, its lease lapses after the TTL and a standby takes over. Two holders can
overlap briefly (a paused process renewing late), so the jobs behind a lease stay correct
without it: the lease only keeps them from doing the work twice as often.
"""

from __future__ import annotations

import secrets

import redis.asyncio as aioredis

# KEYS[1] the lease; ARGV[1] our holder id, ARGV[2] the TTL in ms. 1 when we hold it after.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """One named lease in Redis; `hold()` takes or renews it."""

    def __init__(self, client: aioredis.Redis, key: str, ttl_s: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = max(100, int(ttl_s * 1000))
        self.holder = secrets.token_hex(8)
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    async def hold(self) -> bool:
        """Take or renew the lease; whether this replica holds it now."""
        return bool(await self._hold(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def release(self) -> None:
        """Give the lease up (at shutdown) so a standby takes over at once."""
        await self._release(keys=[self.key], args=[self.holder])
