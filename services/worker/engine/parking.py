"""Parked runs in Redis: the continuation that resumes them, and their callbacks.

A parked run's state lives in PostgreSQL (status `waiting`, its steps, `resume_at`); what wakes
it is an RQ job scheduled for `resume_at` in RQ's scheduled registry, put there through the
queue contract's one enqueue API. The worker supervisor runs RQ's scheduler, which moves due
jobs onto the queue, so the run resumes on whichever worker takes it.

A run whose workflow has a `wait_for_callback` step also has a callback key
(`shared.hooks.callback_key`), the only way ingest knows whether the run can take a callback.
Its value moves through: absent → "O:<owner>" (open: the run is running; each delivery opens
it) → "W:<owner>:<continuation job id>" (parked on the callback) → "B:<owner><body>" (a POST
came; ingest also makes the continuation due now) → "C" (closed: taken by the resumed run, or
the run ended). A POST that finds "C" is answered 409, one that finds no key (a run that never
waits, or ended long ago) 404. A POST that comes while the run is open but not parked yet is
kept briefly, and the park finds it. Every lifetime is in shared/hooks.py; a stored body counts
against its owner's callback storage until it is taken or expires. Each side changes the key
with one atomic script.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.hooks import (
    CALLBACK_CLOSED_TTL_S,
    CALLBACK_OPEN_SLACK_S,
    CALLBACK_PARK_SLACK_S,
    callback_key,
    callback_usage_keys,
)
from shared.queue import RunEnqueuer, RunJob, continuation_job_id, scheduled_registry_key
from shared.settings import Settings

# KEYS: the callback key. ARGV: owner, TTL. Opens it unless the run already parked, got its
# body or was closed.
_OPEN = """
local state = redis.call('GET', KEYS[1])
if not state or string.sub(state, 1, 2) == 'O:' then
  redis.call('SET', KEYS[1], 'O:' .. ARGV[1], 'EX', ARGV[2])
end
return 1
"""

# KEYS: the callback key. ARGV: owner, continuation job id, TTL, callback (1) or timer (0).
# A callback park marks the run parked and returns 0, or 1 when a body is already there (the
# continuation is then made due at once). A timer park keeps an open key open over the wait.
_PARK = """
local state = redis.call('GET', KEYS[1])
local open = not state or string.sub(state, 1, 2) == 'O:'
if ARGV[4] == '0' then
  if state and open then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  return 0
end
if open then
  redis.call('SET', KEYS[1], 'W:' .. ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
  return 0
end
if string.sub(state, 1, 2) == 'B:' then return 1 end
return 0
"""

# KEYS: the callback key. ARGV: closed TTL, usage prefix, sizes prefix, run id. Takes the body
# if one came (releasing its storage) and closes the key either way.
_TAKE = """
local state = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'C', 'EX', ARGV[1])
if state and string.sub(state, 1, 2) == 'B:' then
  local owner = string.sub(state, 3, 38)
  local sizes = ARGV[3] .. owner
  local size = redis.call('HGET', sizes, ARGV[4])
  if size then
    redis.call('HINCRBY', sizes, '_total', -tonumber(size))
    redis.call('HDEL', sizes, ARGV[4])
  end
  redis.call('ZREM', ARGV[2] .. owner, ARGV[4])
  return string.sub(state, 39)
end
return false
"""
_USAGE_PREFIX, _SIZES_PREFIX = callback_usage_keys("")
log = logging.getLogger(__name__)


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
        self._open = client.register_script(_OPEN)

    async def open_callback(self, job: RunJob, job_timeout_s: float) -> None:
        """Let the run take a callback while this delivery runs (its workflow has a
        `wait_for_callback` step); a no-op once it parked on it, got it or ended."""
        ttl = math.ceil(job_timeout_s) + CALLBACK_OPEN_SLACK_S
        try:
            await self._open(keys=[callback_key(job["run_id"])], args=[job["owner_id"], ttl])
        except (RedisError, OSError, TimeoutError) as exc:
            # The run goes on; a callback POSTed before it parks is refused (404) meanwhile.
            log.warning("could not open the run's callback key: %r", exc)

    async def close_callback(self, run_id: str) -> None:
        """The run ended: refuse callbacks for it from now on (best effort: the key expires)."""
        try:
            await self.take_callback(run_id)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not close the run's callback key: %r", exc)

    async def schedule(
        self, job: RunJob, position: int, resume_at: datetime, *, callback: bool
    ) -> None:
        """Schedule the run's continuation at step `position` for `resume_at`.

        For a callback wait, also mark the run as waiting for it; if a callback already came,
        the continuation is made due at once instead. A timer wait keeps an open callback key
        open until the run resumes.
        """
        continuation: RunJob = {**job, "resume_step": position}
        continuation.pop("scheduled_at", None)
        job_id = continuation_job_id(job["run_id"], position)
        key = callback_key(job["run_id"])
        wait_s = max(0.0, resume_at.timestamp() - datetime.now(UTC).timestamp())
        slack = CALLBACK_PARK_SLACK_S if callback else CALLBACK_OPEN_SLACK_S
        args: list[str | int] = [job["owner_id"], job_id, math.ceil(wait_s) + slack, int(callback)]
        async with self.client.pipeline(transaction=True) as pipeline:
            self.enqueuer.add_to(pipeline, continuation, _whole_second_after(resume_at))
            # EVAL, not the registered script: a pipeline holding a script object first asks
            # Redis whether it knows it (SCRIPT EXISTS), a round trip per park.
            pipeline.eval(_PARK, 1, key, *args)
            results = await pipeline.execute()
        if callback and results[-1] == 1:
            # The callback was POSTed before we parked: resume now, the body is waiting.
            now = math.floor(datetime.now(UTC).timestamp())
            await self.client.zadd(self.scheduled_key, {job_id: now}, xx=True)

    async def take_callback(self, run_id: str) -> tuple[bool, Any]:
        """(True, body) when a callback came for the run, else (False, None); closes the key
        (also what a run's end does, so no callback is stored for a run that cannot take it)."""
        body = await self._take(
            keys=[callback_key(run_id)],
            args=[CALLBACK_CLOSED_TTL_S, _USAGE_PREFIX, _SIZES_PREFIX, run_id],
        )
        if body is None:
            return False, None
        return True, orjson.loads(body)
