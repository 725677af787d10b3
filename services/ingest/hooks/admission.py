"""Whether ingest may accept one more delivery: the overload gauge (503) and the per-webhook
token buckets (429). Both answer from memory: nothing here adds a round trip to a webhook.

Overload: ingest never accepts what it cannot store. A background reader asks Redis every
`ingest_overload_check_seconds` (0.25 s) for the queue's length and its memory use (one round
trip: LLEN + INFO memory); while the backlog is above `ingest_max_backlog` or used memory above
`ingest_max_memory_ratio` of `maxmemory`, deliveries are answered 503 with Retry-After, early
and cheaply, instead of piling up until Redis refuses writes (or evicts, without noeviction).
A reading that failed or went stale says nothing: the delivery is tried, and a Redis that
cannot store it answers 503 through the enqueue itself.

Fairness: one token bucket per webhook (per workflow) in each ingest process, refilled at
`per_s` up to `burst`. A delivery that finds it empty gets 429 with the seconds until the next
token, so one hot sender cannot take the whole front door from the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.exceptions import RedisError

from services.ingest.leanredis import LeanRedis, pack

log = logging.getLogger(__name__)

# A reading older than this many check intervals is stale (the reader is stuck): ignored.
_STALE_INTERVALS = 8


@dataclass(frozen=True, slots=True)
class Reading:
    """What Redis said at `taken_at` (monotonic seconds)."""

    backlog: int
    used_memory: int
    max_memory: int  # 0: Redis has no maxmemory
    taken_at: float


def parse_memory(info: bytes | str) -> tuple[int, int]:
    """(used_memory, maxmemory) from the text of `INFO memory`."""
    text = info.decode() if isinstance(info, bytes) else info
    fields: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("used_memory", "maxmemory") and value.strip().isdigit():
            fields[name] = int(value)
    return fields.get("used_memory", 0), fields.get("maxmemory", 0)


class OverloadGauge:
    """The last reading of the queue backlog and Redis memory, refreshed in the background."""

    def __init__(
        self,
        redis: LeanRedis,
        queue_key: str,
        *,
        max_backlog: int,
        max_memory_ratio: float,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._probe = pack("LLEN", queue_key) + pack("INFO", "memory")
        self._max_backlog = max_backlog
        self._max_memory_ratio = max_memory_ratio
        self._interval = interval_s
        self._clock = clock
        self.reading: Reading | None = None

    def overloaded(self) -> str | None:
        """Why ingest must refuse now ("backlog" or "memory"), or None to accept."""
        reading = self.reading
        if reading is None or self._clock() - reading.taken_at > self._interval * _STALE_INTERVALS:
            return None
        if reading.backlog >= self._max_backlog:
            return "backlog"
        if (
            reading.max_memory
            and reading.used_memory >= reading.max_memory * self._max_memory_ratio
        ):
            return "memory"
        return None

    async def refresh(self) -> None:
        """Take one reading (raises on a Redis failure; the previous reading then ages out)."""
        taken_at = self._clock()
        backlog, info = await self._redis.execute(self._probe, 2)
        used, maximum = parse_memory(info)
        self.reading = Reading(int(backlog), used, maximum, taken_at)

    async def run_forever(self) -> None:
        """Refresh every interval until cancelled (at shutdown); failures are logged, once."""
        failing = False
        while True:
            try:
                await self.refresh()
                failing = False
            except (RedisError, OSError, TimeoutError) as exc:
                if not failing:
                    log.warning("overload reading failed; accepting unchecked: %r", exc)
                failing = True
            await asyncio.sleep(self._interval)


class TokenBuckets:
    """One token bucket per key (a workflow id), bounded in number.

    A bucket untouched long enough to have refilled is the same as no bucket, so when the table
    is full those are dropped first; a flood of distinct keys beyond that (each key is a real
    webhook, resolved before we get here) resets the table rather than grow without bound.
    """

    def __init__(
        self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, updated at]
        self._max_entries = max_entries
        self._clock = clock

    def take(self, key: str, per_s: float, burst: int) -> int:
        """Take one token: 0 when granted, else the whole seconds until one is there."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_entries:
                self._evict(now, per_s, burst)
            bucket = self._buckets[key] = [float(burst), now]
        tokens = min(float(burst), bucket[0] + (now - bucket[1]) * per_s)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / per_s))

    def _evict(self, now: float, per_s: float, burst: int) -> None:
        full_after = burst / per_s
        stale = [key for key, (_, at) in self._buckets.items() if now - at >= full_after]
        for key in stale:
            del self._buckets[key]
        if len(self._buckets) >= self._max_entries:
            self._buckets.clear()
