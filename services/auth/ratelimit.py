"""Failed-login throttling per (account, client) and per client, kept in Redis.

Counting in Redis (not in process) makes the limits hold across every auth replica. Two counters:
- per (account, client): 5 failures lock that client out of that account, never the account's
  owner on another client (a stranger's guesses must not lock anyone out);
- per client: a client guessing across many accounts is stopped too (credential stuffing).

An attempt first *reserves* a failure in one atomic Lua step (check and increment together), so
40 concurrent guesses against a limit of 5 get 5 password checks and 35 refusals, not 40 checks.
When the password turns out right the reservation is given back; when it is wrong it stays as the
recorded failure; when the check never finished (an error, a busy hasher) it is given back too.
The client is the peer address, or the address a trusted proxy forwarded (shared/serve.py).
"""

from __future__ import annotations

import hashlib

import redis.asyncio as aioredis

PREFIX = "automateos:login-failures:"

# KEYS: pair, client. ARGV: pair limit, client limit, window seconds.
# Returns 0 when the attempt may go ahead (a failure is reserved on both counters), else the
# seconds until the fullest counter's window ends.
_RESERVE = """
local limits = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local wait = 0
for i = 1, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') >= limits[i] then
    local ttl = redis.call('TTL', KEYS[i])
    if ttl < 1 then ttl = 1 end
    if ttl > wait then wait = ttl end
  end
end
if wait > 0 then return wait end
for i = 1, 2 do
  redis.call('INCR', KEYS[i])
  if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return 0
"""

# KEYS: pair, client. ARGV: "clear" (the password was right: forget this client's failures on
# this account) or "undo" (the attempt never finished: give back its reservation only).
# Never below zero: a counter that expired meanwhile must not turn into extra attempts.
_RELEASE = """
if ARGV[1] == 'clear' then
  redis.call('DEL', KEYS[1])
elseif tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


def _digest(value: str) -> str:
    # Keys carry no email address or client string as such, and stay short whatever was sent.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


class LoginThrottle:
    """Reserve an attempt before the password check; settle it once the outcome is known."""

    def __init__(
        self,
        client: aioredis.Redis,
        max_failures: int,
        max_failures_per_client: int,
        window_s: int,
    ) -> None:
        self.client = client
        self.max_failures = max_failures
        self.max_failures_per_client = max_failures_per_client
        self.window_s = window_s
        self._reserve = client.register_script(_RESERVE)
        self._release = client.register_script(_RELEASE)

    def _keys(self, email: str, client: str) -> list[str]:
        client_id = _digest(client)
        return [f"{PREFIX}pair:{_digest(email)}:{client_id}", f"{PREFIX}client:{client_id}"]

    async def reserve(self, email: str, client: str) -> int | None:
        """None when the attempt may go ahead, else the seconds until it may be retried."""
        limits = (self.max_failures, self.max_failures_per_client, self.window_s)
        wait = int(await self._reserve(keys=self._keys(email, client), args=limits))
        return wait or None

    async def succeeded(self, email: str, client: str) -> None:
        """The password was right: this client's failures on this account are forgotten."""
        await self._release(keys=self._keys(email, client), args=["clear"])

    async def abandoned(self, email: str, client: str) -> None:
        """The attempt ended without an answer on the password: it counts as nothing."""
        await self._release(keys=self._keys(email, client), args=["undo"])
