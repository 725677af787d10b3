"""Folding webhook deliveries of a debounced workflow into one run (shared/flow_debounce.py).

Only workflows with `debounce` come here; the others keep ingest's one-MULTI path. A folded
delivery costs one script call; the first of a key also stores its run's job, scheduled for
the end of the debounce period (RQ's scheduled registry, through the one enqueue API).
"""

from __future__ import annotations

import time
from contextlib import suppress
from datetime import UTC, datetime

import orjson
from redis.exceptions import RedisError

from services.ingest.leanredis import LeanRedis, pack
from shared.flow import DebounceSpec, redis_key
from shared.flow_debounce import FOLD, ttl_ms
from shared.flow_keys import render_key
from shared.queue import RunEnqueuer, RunJob


class Debouncer:
    """Folds a delivery into its key's pending run, or starts one."""

    def __init__(self, redis: LeanRedis, enqueuer: RunEnqueuer) -> None:
        self._redis = redis
        self._enqueuer = enqueuer

    async def fold(self, job: RunJob, spec: DebounceSpec) -> tuple[str, bool]:
        """(the run the delivery joined or started, whether it joined an existing one).

        Raises RedisError/OSError/TimeoutError when Redis fails (nothing was accepted then).
        """
        key = redis_key("deb", job["workflow_id"], render_key(spec.get("key"), job["trigger"]))
        max_wait = spec.get("max_wait_s")
        run_id, created, due = await self._redis.call(
            "EVAL",
            FOLD,
            1,
            key,
            job["run_id"],
            repr(time.time()),
            repr(float(spec["period_s"])),
            repr(float(max_wait or 0)),
            orjson.dumps(job["trigger"]),
            ttl_ms(spec["period_s"], max_wait),
        )
        run = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
        if not int(created):
            return run, True
        at = datetime.fromtimestamp(float(due), UTC)
        commands = [pack(*args) for args, _options in self._enqueuer.commands(job, at)]
        try:
            await self._redis.transaction(commands, len(commands))
        except (RedisError, OSError, TimeoutError):
            # Without its job the run would never start: later deliveries must not join it.
            with suppress(RedisError, OSError, TimeoutError):
                await self._redis.call("DEL", key)
            raise
        return run, False
