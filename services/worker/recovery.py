"""The recovery sweep: runs whose job vanished are marked failed instead of `running` forever.

RQ re-queues a job whose worker died (the started registry expires, `Retry` re-enqueues it),
so most interrupted runs resume by themselves. What RQ cannot recover (retries exhausted by a
job that kills its worker every time, Redis restarted without persistence, a job deleted by
hand) would leave the run `running` forever. n8n marks such executions as crashed; so do we.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.engine import repository
from shared.queue import job_key

log = logging.getLogger(__name__)

LOST_ERROR = "worker lost; job not recoverable"
# RQ statuses of a job that will still run (or is running): its run is not lost.
LIVE_JOB_STATUSES = frozenset({"queued", "started", "scheduled", "deferred"})


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


class RecoverySweep:
    """Marks stale `running` runs with no live RQ job as failed, a bounded batch per pass."""

    def __init__(
        self,
        db: AsyncEngine,
        client: aioredis.Redis,
        queue_name: str,
        *,
        stale_after_s: float,
        interval_s: float,
        batch: int,
    ) -> None:
        self.db = db
        self.client = client
        self.stale_after_s = stale_after_s
        self.batch = batch
        # Replicas of one deployment take turns; the lock lapses before the next pass is due.
        self.lock_key = f"automateos:recovery-sweep:{queue_name}"
        self.lock_ttl_ms = max(100, int(interval_s * 800))

    async def sweep_once(self) -> list[uuid.UUID]:
        """Run one pass; return the ids of the runs marked failed."""
        if not await self.client.set(self.lock_key, "1", nx=True, px=self.lock_ttl_ms):
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=self.stale_after_s)
        async with self.db.connect() as conn:
            candidates = await repository.stale_running_runs(conn, cutoff, self.batch)
            if not candidates:
                return []
            async with self.client.pipeline(transaction=False) as pipe:
                for run_id in candidates:
                    pipe.hget(job_key(str(run_id)), "status")
                statuses = await pipe.execute()
            lost = [
                run_id
                for run_id, status in zip(candidates, statuses, strict=True)
                if _text(status) not in LIVE_JOB_STATUSES
            ]
            if not lost:
                return []
            marked = await repository.fail_lost_runs(conn, lost, cutoff, LOST_ERROR)
        log.warning(
            "recovery sweep marked %d lost runs failed",
            marked,
            extra={"run_ids": [str(i) for i in lost]},
        )
        return lost
