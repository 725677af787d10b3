"""The scheduler: every due tick of a schedule trigger becomes exactly one queued run.

It runs in the worker supervisor of every worker pod; a Redis lease (services/worker/lease.py)
makes one of them active and the others stand by. Each poll takes the due workflows with
`SELECT ... FOR UPDATE SKIP LOCKED`, enqueues a tick's run, moves `next_run_at` on and commits.

Exactly once, whatever happens to the replicas:
- a tick's run id is derived from (workflow, tick time), so every replica names the same run;
- the enqueue sets a per-tick marker in the same Redis MULTI as the job (under WATCH), so a
  tick already enqueued is never enqueued again;
- a replica that dies after the enqueue but before its commit leaves the row unchanged and
  unlocked; the next holder finds the marker, enqueues nothing, and moves the row on.
Ticks missed while no scheduler ran are skipped, not replayed, once they are older than
`AUTOMATEOS_SCHEDULE_MISFIRE_GRACE_SECONDS` (60 s): a takeover after a crash still runs them.
Deactivating or deleting a workflow clears or removes its row in its own transaction, so the
next poll (0.2 s later) no longer sees it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.worker.lease import Lease
from shared.flow import spec_of
from shared.ids import uuid7_for
from shared.queue import RunEnqueuer, RunJob
from shared.schedules import next_tick

log = logging.getLogger(__name__)

TICK_KEY_PREFIX = "automateos:tick:"
# A tick's marker only has to outlive the row's move to the next tick (milliseconds later, or
# one takeover later): an hour is ample and keeps at most 3,600 markers of an `every: 1s`.
TICK_MARKER_TTL_S = 3600
_BATCH = 200
# Catch-up rounds per poll: a workflow moves one tick per round.
_MAX_ROUNDS = 50

_DUE = text(
    """
    SELECT id, owner_id, version, trigger, next_run_at, flow FROM workflows
    WHERE next_run_at <= :now AND active
    ORDER BY next_run_at LIMIT :limit
    FOR UPDATE SKIP LOCKED
    """
)
_ADVANCE = text("UPDATE workflows SET next_run_at = :next WHERE id = :id")


def tick_run_id(workflow_id: uuid.UUID, due: datetime) -> uuid.UUID:
    """The run id of one tick: the same on every replica."""
    unix_ms = int(due.timestamp() * 1000)
    return uuid7_for(unix_ms, f"tick:{workflow_id}:{unix_ms}".encode())


def tick_job(row: Any, due: datetime, now: datetime) -> RunJob:
    """The queued job of one tick (`trigger.scheduled_at` is the tick's time)."""
    job: RunJob = {
        "run_id": str(tick_run_id(row.id, due)),
        "workflow_id": str(row.id),
        "owner_id": str(row.owner_id),
        "workflow_version": row.version,
        "trigger": {
            "body": None,
            "headers": {},
            "query": {},
            "method": "SCHEDULE",
            "received_at": now.isoformat(),
            "scheduled_at": due.isoformat(),
        },
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }
    flow = spec_of(getattr(row, "flow", None))
    if flow is not None:
        job["flow"] = flow
    return job


class Scheduler:
    """Turns due ticks into runs; `poll_once` is one pass, `run_forever` the loop."""

    def __init__(
        self,
        db: AsyncEngine,
        client: aioredis.Redis,
        enqueuer: RunEnqueuer,
        *,
        poll_s: float,
        misfire_grace_s: float,
    ) -> None:
        self.db = db
        self.client = client
        self.enqueuer = enqueuer
        self.poll_s = poll_s
        self.grace = timedelta(seconds=misfire_grace_s)
        # Renewed every poll: a dead holder is replaced within a few seconds.
        self.lease = Lease(
            client, f"automateos:scheduler:{enqueuer.queue_name}", max(3.0, poll_s * 10)
        )

    async def run_forever(self) -> None:
        """Poll while this replica holds the lease; stand by otherwise. Never raises."""
        while True:
            try:
                if await self.lease.hold():
                    await self.poll_once()
            except Exception as exc:  # an outage: try again next poll
                log.warning("scheduler poll failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.poll_s)

    async def poll_once(self, now: datetime | None = None) -> int:
        """Handle every due tick (catching up a few rounds); return how many runs were queued."""
        queued = 0
        for _ in range(_MAX_ROUNDS):
            current = now or datetime.now(UTC)
            handled, enqueued = await self._round(current)
            queued += enqueued
            if handled == 0:
                break
        return queued

    async def _round(self, now: datetime) -> tuple[int, int]:
        async with self.db.connect() as conn, conn.begin():
            rows = (await conn.execute(_DUE, {"now": now, "limit": _BATCH})).all()
            enqueued = 0
            for row in rows:
                enqueued += await self._tick(conn, row, now)
        return len(rows), enqueued

    async def _tick(self, conn: AsyncConnection, row: Any, now: datetime) -> int:
        due: datetime = row.next_run_at
        trigger = row.trigger
        try:
            if due < now - self.grace:
                log.info(
                    "schedule tick missed while no scheduler ran; skipped",
                    extra={"workflow_id": str(row.id), "scheduled_at": due.isoformat()},
                )
                following = next_tick(trigger, now)
                enqueued = 0
            else:
                enqueued = int(await self._enqueue(tick_job(row, due, now), row.id, due))
                following = next_tick(trigger, due)
        except ValueError as exc:
            # A trigger that no longer parses (edited by hand): stop it rather than loop on it.
            log.warning("bad schedule stopped: %s", exc, extra={"workflow_id": str(row.id)})
            await conn.execute(_ADVANCE, {"id": row.id, "next": None})
            return 0
        await conn.execute(_ADVANCE, {"id": row.id, "next": following})
        return enqueued

    async def _enqueue(self, job: RunJob, workflow_id: uuid.UUID, due: datetime) -> bool:
        """Enqueue the tick's job unless its marker says it already was; whether it was now."""
        marker = f"{TICK_KEY_PREFIX}{workflow_id}:{int(due.timestamp() * 1000)}"
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(marker)
            if await pipe.exists(marker):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(marker, job["run_id"], ex=TICK_MARKER_TTL_S)
            self.enqueuer.add_to(pipe, job)
            try:
                await pipe.execute()
            except WatchError:
                # Another replica enqueued this very tick between our WATCH and EXEC.
                return False
        return True
