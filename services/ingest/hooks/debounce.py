"""Folding webhook deliveries of a debounced workflow into one run (shared/flow_debounce.py).

Only workflows with `debounce` come here; the others keep ingest's one-MULTI path. A delivery
costs one script call, which carries the job a new run would need (RQ's commands to schedule
it for the end of the debounce period, through the one enqueue API): the first delivery of a
key stores it in the same script that creates the key, so no key ever names a run without a
job, even when Redis dies between two commands.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson

from services.ingest.leanredis import LeanRedis
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
        now = time.time()
        # The job a new run would need, scheduled for when FOLD would make it due.
        at = datetime.fromtimestamp(now + float(spec["period_s"]), UTC)
        commands = [
            argument
            for args, _options in self._enqueuer.commands(job, at)
            for argument in (len(args), *args)
        ]
        run_id, created, _due = await self._redis.call(
            "EVAL",
            FOLD,
            1,
            key,
            job["run_id"],
            repr(now),
            repr(float(spec["period_s"])),
            repr(float(max_wait or 0)),
            orjson.dumps(job["trigger"]),
            ttl_ms(spec["period_s"], max_wait),
            *commands,
        )
        run = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
        if not int(created):
            return run, True
        return run, False
