"""Parked runs in Redis: the continuation that resumes them, and their callbacks.

A parked run's state lives in PostgreSQL (status `waiting`, its steps, `resume_at`); what wakes
it is an RQ job scheduled for `resume_at` in RQ's scheduled registry, put there through the
queue contract's one enqueue API. The worker supervisor runs RQ's scheduler, which moves due
jobs onto the queue, so the run resumes on whichever worker takes it.

A `wait_for_callback` run also has a callback key (`shared.hooks.callback_key`) whose value
moves through: absent → "W:<continuation job id>" (parked) → "B:<body>" (a POST came; ingest
also makes the continuation due now) → "C" (taken by the resumed run, or timed out). A POST
that finds "B:" or "C" is answered 409. A POST that comes before the run parks is kept, and
the park finds it. Both sides change the key with one atomic script each.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis

from shared.hooks import callback_key
from shared.queue import RunEnqueuer, RunJob, continuation_job_id, scheduled_registry_key
from shared.settings import Settings

# Longest wait plus slack: a callback key outlives any run that could still read it.
CALLBACK_TTL_S = 31 * 24 * 3600

# The engine takes the callback: returns the body if one came, and closes the key either way.
_TAKE = """
local state = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'C', 'EX', ARGV[1])
if state and string.sub(state, 1, 2) == 'B:' then return string.sub(state, 3) end
return false
"""


def _whole_second_after(moment: datetime) -> datetime:
    # RQ scores scheduled jobs in whole seconds, truncating: round up so nothing wakes early.
    return datetime.fromtimestamp(math.ceil(moment.timestamp()), tz=UTC)


class Parking:
    """Schedules continuations of parked runs and hands them their callbacks."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.enqueuer = RunEnqueuer(client, settings.queue_name, settings.job_timeout_seconds)
        self.scheduled_key = scheduled_registry_key(settings.queue_name)
        self._take = client.register_script(_TAKE)

    async def schedule(
        self, job: RunJob, position: int, resume_at: datetime, *, callback: bool
    ) -> None:
        """Schedule the run's continuation at step `position` for `resume_at`.

        For a callback wait, also mark the run as waiting for it; if a callback already came,
        the continuation is made due at once instead.
        """
        continuation: RunJob = {**job, "resume_step": position}
        continuation.pop("scheduled_at", None)
        job_id = continuation_job_id(job["run_id"], position)
        key = callback_key(job["run_id"])
        async with self.client.pipeline(transaction=True) as pipeline:
            self.enqueuer.add_to(pipeline, continuation, _whole_second_after(resume_at))
            if callback:
                pipeline.set(key, f"W:{job_id}", nx=True, ex=CALLBACK_TTL_S)
            results = await pipeline.execute()
        if callback and not results[-1]:
            # The callback was POSTed before we parked: resume now, the body is waiting.
            now = math.floor(datetime.now(UTC).timestamp())
            await self.client.zadd(self.scheduled_key, {job_id: now}, xx=True)

    async def take_callback(self, run_id: str) -> tuple[bool, Any]:
        """(True, body) when a callback came for the run, else (False, None); closes it."""
        body = await self._take(keys=[callback_key(run_id)], args=[CALLBACK_TTL_S])
        if body is None:
            return False, None
        return True, orjson.loads(body)
