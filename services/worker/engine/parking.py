"""The engine's side of parked runs: callbacks, and resuming at once when one is already in.

The protocol (callback key states, its lifetime, the scripts) is `shared.waits`. A parked run's
resume time is its `resume_at` in PostgreSQL only: nothing is scheduled in Redis for a timer;
the supervisor's due-run poller (services/worker/dueruns.py) enqueues the continuation when it
is due, or sooner when a callback wakes the run.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from shared.hooks import callback_key
from shared.queue import RunEnqueuer, RunJob
from shared.settings import Settings
from shared.waits import CALLBACK_TTL_S, PARK, TAKE


def continuation(job: RunJob, position: int) -> RunJob:
    """The job that resumes `job`'s run at step `position`."""
    resumed: RunJob = {**job, "resume_step": position}
    resumed.pop("scheduled_at", None)
    return resumed


class Parking:
    """Marks callback waits, resumes runs whose callback came first, hands callbacks over."""

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self.client = client
        self.enqueuer = RunEnqueuer(client, settings.queue_name, settings.job_timeout_seconds)
        self._park = client.register_script(PARK)
        self._take = client.register_script(TAKE)

    async def schedule(self, job: RunJob, position: int, *, callback: bool) -> None:
        """After the run was recorded `waiting` at step `position`: wait for its callback.

        A timer needs nothing here (its `resume_at` is in PostgreSQL). For a callback wait, mark
        the run as waiting for it; if the callback already came, resume the run now.
        """
        if not callback:
            return
        waiting = await self._park(
            keys=[callback_key(job["run_id"])], args=[position, CALLBACK_TTL_S]
        )
        if not waiting:
            await self.enqueuer.enqueue(continuation(job, position))

    async def take_callback(self, run_id: str) -> tuple[bool, Any]:
        """(True, body) when a callback came for the run, else (False, None); closes it."""
        body = await self._take(keys=[callback_key(run_id)], args=[CALLBACK_TTL_S])
        if body is None:
            return False, None
        return True, orjson.loads(body)
