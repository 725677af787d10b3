"""Runs the engine starts itself (child runs, error workflows' runs, parents' wake-ups), queued
exactly once.

Each such run is first a `queued` row in PostgreSQL under a deterministic id, so a worker that
dies and comes back names the same run and never a second one. Its job is then put on the
queue through the one enqueue API in the same Redis MULTI as a marker, under WATCH (the
scheduler's pattern, services/worker/scheduler.py): however many deliveries try, whether they
race or retry after a crash, the job is queued once. A crash between the row and the job
leaves a queued row without a job, which the next attempt (a redelivery of the job that
started it) finds and queues.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from shared.ids import uuid7_for
from shared.queue import RunEnqueuer, RunJob, TriggerRequest

SPAWN_KEY_PREFIX = "automateos:spawned:"
# Only has to outlive the queued job: a job waits on the queue for minutes, not a week.
SPAWN_MARKER_TTL_S = 7 * 24 * 3600


def derived_run_id(origin: uuid.UUID, purpose: str) -> uuid.UUID:
    """A run id derived from the run that starts it and why: the same on every delivery.

    It carries the origin run's time, so a derived run sorts beside the run that made it.
    """
    unix_ms = (origin.int >> 80) & ((1 << 48) - 1)
    return uuid7_for(unix_ms, f"{purpose}:{origin}".encode())


def system_trigger(body: Any, method: str) -> TriggerRequest:
    """The trigger of a run the engine starts: `body` is its `trigger.body`."""
    return {
        "body": body,
        "headers": {},
        "query": {},
        "method": method,
        "received_at": datetime.now(UTC).isoformat(),
    }


def job_from_row(row: Any) -> RunJob:
    """The queue payload of a queued run row (id, workflow_id, owner_id, version, trigger)."""
    trigger = dict(row.trigger or {})
    return {
        "run_id": str(row.id),
        "workflow_id": str(row.workflow_id),
        "owner_id": str(row.owner_id),
        "workflow_version": int(row.workflow_version),
        "trigger": {
            "body": trigger.get("body"),
            "headers": trigger.get("headers") or {},
            "query": trigger.get("query") or {},
            "method": trigger.get("method") or "POST",
            "received_at": trigger.get("received_at") or datetime.now(UTC).isoformat(),
        },
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }


class Spawner:
    """Queues the jobs of runs the engine started, each at most once."""

    def __init__(self, client: aioredis.Redis, enqueuer: RunEnqueuer) -> None:
        self.client = client
        self.enqueuer = enqueuer

    async def enqueue_once(self, job: RunJob, marker: str | None = None) -> bool:
        """Queue `job` unless `marker` (default: one per job id) says it already was.

        Returns whether this call queued it. Raises on a Redis failure (nothing is queued).
        """
        key = SPAWN_KEY_PREFIX + (marker or job["run_id"])
        async with self.client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            if await pipe.exists(key):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, job["run_id"], ex=SPAWN_MARKER_TTL_S)
            self.enqueuer.add_to(pipe, job)
            try:
                await pipe.execute()
            except WatchError:
                # Another delivery queued it between our WATCH and EXEC.
                return False
        return True
