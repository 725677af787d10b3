"""Failed-login throttling, per account and per client address, kept in Redis.

Counting in Redis (not in process) makes the limit hold across every auth replica.
"""

from __future__ import annotations

import redis.asyncio as aioredis

PREFIX = "automateos:login-failures:"


class LoginThrottle:
    def __init__(self, client: aioredis.Redis, max_failures: int, window_s: int) -> None:
        self.client = client
        self.max_failures = max_failures
        # One address may front many users (NAT, an office): allow it more attempts.
        self.max_failures_per_address = max_failures * 4
        self.window_s = window_s

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        return f"{PREFIX}email:{email}", f"{PREFIX}addr:{address}"

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds until another attempt is allowed, or None when attempts are allowed now."""
        email_key, address_key = self._keys(email, address)
        async with self.client.pipeline(transaction=False) as pipe:
            for key in (email_key, address_key):
                pipe.get(key)
                pipe.ttl(key)
            by_email, email_ttl, by_address, address_ttl = await pipe.execute()
        waits = []
        if by_email is not None and int(by_email) >= self.max_failures:
            waits.append(max(int(email_ttl), 1))
        if by_address is not None and int(by_address) >= self.max_failures_per_address:
            waits.append(max(int(address_ttl), 1))
        return max(waits) if waits else None

    async def record_failure(self, email: str, address: str) -> None:
        email_key, address_key = self._keys(email, address)
        async with self.client.pipeline(transaction=True) as pipe:
            for key in (email_key, address_key):
                pipe.incr(key)
                pipe.expire(key, self.window_s, nx=True)
            await pipe.execute()

    async def reset(self, email: str) -> None:
        await self.client.delete(self._keys(email, "")[0])
