"""The due-run poller: starts the continuations of parked runs, from PostgreSQL's `resume_at`.

A parked run's resume time lives in its row only (shared/waits.py has the protocol). One
replica at a time (a `Lease`) polls every second:

- runs whose callback came (ingest put their ids in the queue's wake set), and
- runs whose `resume_at` has passed,

claims them by moving `resume_at` forward by `redeliver_after_s` (so the next poll does not
enqueue them again) and enqueues their continuations in one pipeline. The resumed delivery
clears `resume_at`; a continuation lost on the way (Redis died without its append-only file)
comes due again after `redeliver_after_s` — so no sweep has to reconcile two copies.

The continuation is built from the row: its trigger is the recorded one, whose credential
headers are redacted (nodes after a park see their names, not their values).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.lease import Lease
from shared.flow import spec_of
from shared.queue import RunEnqueuer, RunJob
from shared.waits import wake_key

log = logging.getLogger(__name__)

# What a continuation carries besides the row's own: a child's parent (so its end wakes the
# parent) and the workflow's flow fields (so a run holding a concurrency place gives it back).
_COLUMNS = (
    "r.id, r.workflow_id, r.owner_id, r.workflow_version, r.trigger, r.waiting_step,"
    " r.parent_run_id, r.parent_step, w.flow"
)
# SKIP LOCKED: two holders overlapping for a moment (a paused process renewing late) take
# different rows instead of waiting on each other.
# Due: waiting runs past their resume time, and cancelled parked children (whose parents learn
# of the cancellation from their last continuation): these are taken once (resume_at cleared).
_TAKE_DUE = text(
    f"""
    WITH due AS (
        SELECT id FROM workflow_runs
        WHERE status = 'waiting' AND resume_at <= now() AND (queue = :queue OR queue IS NULL)
        ORDER BY resume_at LIMIT :limit FOR UPDATE SKIP LOCKED
    ), gone AS (
        SELECT id FROM workflow_runs
        WHERE status = 'cancelled' AND resume_at <= now() AND parent_run_id IS NOT NULL
          AND (queue = :queue OR queue IS NULL)
        LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    UPDATE workflow_runs r
    SET resume_at = CASE WHEN r.status = 'waiting'
                         THEN now() + make_interval(secs => :redeliver) END
    FROM workflows w
    WHERE w.id = r.workflow_id
      AND r.id IN (SELECT id FROM due UNION ALL SELECT id FROM gone)
    RETURNING {_COLUMNS}
    """  # noqa: S608
)
_TAKE_WOKEN = text(
    f"""
    UPDATE workflow_runs r SET resume_at = now() + make_interval(secs => :redeliver)
    FROM workflows w
    WHERE w.id = r.workflow_id AND r.id = ANY(CAST(:ids AS uuid[])) AND r.status = 'waiting'
    RETURNING {_COLUMNS}
    """  # noqa: S608
)


def continuation_of(row: Any) -> RunJob:
    """The job that resumes a parked run at its waiting step."""
    job: RunJob = {
        "run_id": str(row.id),
        "workflow_id": str(row.workflow_id),
        "owner_id": str(row.owner_id),
        "workflow_version": row.workflow_version,
        "trigger": row.trigger,
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
        "resume_step": row.waiting_step,
    }
    if row.parent_run_id is not None and row.parent_step is not None:
        job["parent_run_id"] = str(row.parent_run_id)
        job["parent_step"] = int(row.parent_step)
    flow = spec_of(row.flow)
    if flow is not None:
        job["flow"] = flow
    return job


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class DueRunPoller:
    """Enqueues the continuations of due and woken parked runs; one pass is `poll_once`."""

    def __init__(
        self,
        db: AsyncEngine,
        client: aioredis.Redis,
        enqueuer: RunEnqueuer,
        *,
        interval_s: float,
        batch: int,
        redeliver_after_s: float,
    ) -> None:
        self.db = db
        self.client = client
        self.enqueuer = enqueuer
        self.interval_s = interval_s
        self.batch = batch
        self.redeliver_after_s = redeliver_after_s
        self.wake_key = wake_key(enqueuer.queue_name)
        self.lease = Lease(
            client, f"automateos:due-runs:{enqueuer.queue_name}", max(3.0, interval_s * 3)
        )

    async def run_forever(self) -> None:
        """Poll while this replica holds the lease; stand by otherwise. Never raises."""
        while True:
            try:
                if await self.lease.hold():
                    await self.poll_once()
            except Exception as exc:  # an outage: parked runs resume late, never lost
                log.warning("due-run poll failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval_s)

    async def poll_once(self) -> int:
        """Enqueue every woken and due run's continuation (bounded); return how many."""
        members: list[bytes] = await self.client.zrange(self.wake_key, 0, self.batch - 1)  # type: ignore[assignment]
        woken = [_text(member) for member in members]
        params = {
            "redeliver": self.redeliver_after_s,
            "limit": self.batch,
            "queue": self.enqueuer.queue_name,
        }
        async with self.db.begin() as conn:
            rows: list[Any] = []
            if woken:
                ids = [uuid.UUID(member) for member in woken]
                rows += (await conn.execute(_TAKE_WOKEN, {**params, "ids": ids})).all()
            rows += (await conn.execute(_TAKE_DUE, params)).all()
        # After the commit: a continuation enqueued first could resume the run before its
        # row was taken, and the next poll would enqueue it a second time.
        if rows or woken:
            async with self.client.pipeline(transaction=True) as pipe:
                for row in {row.id: row for row in rows}.values():
                    self.enqueuer.add_to(pipe, continuation_of(row))
                if woken:
                    pipe.zrem(self.wake_key, *woken)
                await pipe.execute()
        return len(rows)
