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
from services.worker.flow.gate import FlowGate
from services.worker.flow.scripts import FlowScripts
from services.worker.lease import Lease
from shared.queue import RunEnqueuer, continuation_job_id, job_key
from shared.settings import Settings

log = logging.getLogger(__name__)

LOST_ERROR = "worker lost; job not recoverable"
# RQ statuses of a job that will still run (or is running): its run is not lost.
LIVE_JOB_STATUSES = frozenset({"queued", "started", "scheduled", "deferred"})


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


class RecoverySweep:
    """Marks failed the runs still `running` long after their job timeout whose job is gone.

    A bounded batch per pass. Parked runs need no repair: their resume time is in PostgreSQL
    and the due-run poller enqueues their continuations again if one is lost (dueruns.py).
    """

    def __init__(
        self,
        db: AsyncEngine,
        client: aioredis.Redis,
        settings: Settings,
        *,
        stale_after_s: float,
        interval_s: float,
        batch: int,
    ) -> None:
        self.db = db
        self.client = client
        self.stale_after_s = stale_after_s
        self.batch = batch
        # One replica sweeps; the lease lapses before the next pass is due, so replicas of one
        # deployment take turns rather than needing a release.
        self.lease = Lease(
            client, f"automateos:recovery-sweep:{settings.queue_name}", max(0.1, interval_s * 0.8)
        )
        # A lost run's concurrency place goes to the next run of its key (flow/gate.py).
        self.flow = FlowGate(
            FlowScripts(client),
            RunEnqueuer(client, settings.queue_name, settings.job_timeout_seconds),
        )

    async def sweep_once(self) -> list[uuid.UUID]:
        """Run one pass; return the ids of the runs marked failed."""
        if not await self.lease.hold():
            return []
        cutoff = datetime.now(UTC) - timedelta(seconds=self.stale_after_s)
        async with self.db.connect() as conn:
            candidates = await repository.stale_running_runs(conn, cutoff, self.batch)
            if not candidates:
                return []
            live = await self._live([_job_id(run_id, step) for run_id, step in candidates])
            lost = [
                run_id for (run_id, _), alive in zip(candidates, live, strict=True) if not alive
            ]
            if not lost:
                return []
            marked = await repository.fail_lost_runs(conn, lost, cutoff, LOST_ERROR)
        for run_id in lost:
            # A lost run's concurrency place (if it held one) goes to the next run of its key.
            await self.flow.release(str(run_id))
        log.warning(
            "recovery sweep marked %d lost runs failed",
            marked,
            extra={"run_ids": [str(i) for i in lost]},
        )
        return lost

    async def _live(self, job_ids: list[str]) -> list[bool]:
        async with self.client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hget(job_key(job_id), "status")
            statuses = await pipe.execute()
        return [_text(status) in LIVE_JOB_STATUSES for status in statuses]


def _job_id(run_id: uuid.UUID, waiting_step: int | None) -> str:
    run = str(run_id)
    return run if waiting_step is None else continuation_job_id(run, waiting_step)
