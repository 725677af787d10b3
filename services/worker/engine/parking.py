"""The engine's side of parked runs: callbacks, and resuming at once when one is already in.

The protocol (callback key states, their lifetimes, the scripts) is `shared.waits`. A parked
run's resume time is its `resume_at` in PostgreSQL only: nothing is scheduled in Redis for a
timer; the supervisor's due-run poller (services/worker/dueruns.py) enqueues the continuation
when it is due, or sooner when a callback wakes the run.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.hooks import callback_key
from shared.queue import RunEnqueuer, RunJob
from shared.settings import Settings
from shared.waits import (
    CALLBACK_CLOSED_TTL_S,
    CALLBACK_OPEN_SLACK_S,
    CALLBACK_PARK_SLACK_S,
    OPEN,
    PARK,
    SIZES_PREFIX,
    TAKE,
    USAGE_PREFIX,
)

log = logging.getLogger(__name__)


def continuation(job: RunJob, position: int) -> RunJob:
    """The job that resumes `job`'s run at step `position`."""
    resumed: RunJob = {**job, "resume_step": position}
    resumed.pop("scheduled_at", None)
    return resumed


class Parking:
    """Opens and closes runs' callback keys, marks callback waits, hands callbacks over."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.enqueuer = RunEnqueuer(client, settings.queue_name, settings.job_timeout_seconds)
        self._open = client.register_script(OPEN)
        self._park = client.register_script(PARK)
        self._take = client.register_script(TAKE)

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
        """After the run was recorded `waiting` at step `position` until `resume_at`.

        A timer needs nothing scheduled (its `resume_at` is in PostgreSQL); an open callback key
        stays open over it. For a callback wait, mark the run as waiting for it; if the callback
        already came, resume the run now.
        """
        wait_s = max(0.0, resume_at.timestamp() - datetime.now(UTC).timestamp())
        slack = CALLBACK_PARK_SLACK_S if callback else CALLBACK_OPEN_SLACK_S
        waiting = await self._park(
            keys=[callback_key(job["run_id"])],
            args=[job["owner_id"], position, math.ceil(wait_s) + slack, int(callback)],
        )
        if callback and not waiting:
            await self.enqueuer.enqueue(continuation(job, position))

    async def take_callback(self, run_id: str) -> tuple[bool, Any]:
        """(True, body) when a callback came for the run, else (False, None); closes the key
        (also what a run's end does, so no callback is stored for a run that cannot take it)."""
        body = await self._take(
            keys=[callback_key(run_id)],
            args=[CALLBACK_CLOSED_TTL_S, USAGE_PREFIX, SIZES_PREFIX, run_id],
        )
        if body is None:
            return False, None
        return True, orjson.loads(body)
