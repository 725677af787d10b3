"""Admission of a delivery before the engine claims its run: throttle, then concurrency.

Called only for jobs that carry flow fields (`RunJob.flow`), so a workflow without them costs
nothing here. A held-back run is acknowledged (its delivery returns at once, holding no worker
slot), recorded in PostgreSQL as `queued` with why (`waiting_reason`, `waiting_detail`), and
comes back through the one enqueue API:

- throttled: its next delivery is scheduled for the start time it reserved
  (`RunEnqueuer.enqueue(job, at=...)`), never dropped;
- concurrency: it waits in its key's line in Redis; when a run of the key ends, the script that
  takes the place back queues the run waiting longest (scripts.py), in arrival order.

Throttle comes first so a delayed run does not sit on a concurrency place while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from services.worker import metrics
from services.worker.engine.delivery import DeliveryConnection
from services.worker.flow import records
from services.worker.flow.scripts import HOLD_PREFIX, FlowScripts, encode_commands
from shared.flow import redis_key
from shared.flow_keys import render_key
from shared.queue import RunEnqueuer, RunJob, delivery_job_id

log = logging.getLogger(__name__)

THROTTLED = "throttled"
DEBOUNCED = "debounced"
CONCURRENCY_LIMIT = "concurrency_limit"
# Delivery results after which the run holds no place any more: it ended, or never will run.
_PLACE_ENDS = frozenset(
    {"succeeded", "failed", "cancelled", "already-finished", "workflow-gone", "not-waiting"}
)
# A reservation this close to now is a start now (RQ schedules in whole seconds anyway).
_NOW_SLACK_S = 0.05
_RECORD_TRIES = 8


def hold_key(run_id: str) -> str:
    return HOLD_PREFIX + run_id


def _whole_second_after(moment: float) -> datetime:
    # RQ scores scheduled jobs in whole seconds, truncating: round up so none starts early.
    return datetime.fromtimestamp(math.ceil(moment), UTC)


def _next_delivery(job: RunJob, passed: list[str]) -> RunJob:
    """The job of the run's next delivery: its gates passed so far, a job id of its own."""
    following: RunJob = {**job, "flow_passed": passed}
    following["flow_pass"] = job.get("flow_pass", 0) + 1
    return following


class FlowGate:
    """Throttle reservations and concurrency places for deliveries of flow-controlled runs."""

    def __init__(self, scripts: FlowScripts, enqueuer: RunEnqueuer) -> None:
        self.scripts = scripts
        self.enqueuer = enqueuer
        # Deliveries taken together start together: admitting them one at a time, in the order
        # they were taken (asyncio.Lock wakes waiters first come, first served), keeps arrival
        # order within a process; across processes each take is itself in queue order.
        self._admitting = asyncio.Lock()

    async def admit(self, job: RunJob, db: DeliveryConnection) -> tuple[RunJob, str | None]:
        """(the job to run, None) when the delivery may run now, else (job, why it was held).

        The job to run differs from the delivered one for a debounced run: it carries the last
        trigger folded into the run.
        """
        flow = job.get("flow") or {}
        passed = list(job.get("flow_passed") or [])
        debounce = flow.get("debounce")
        if debounce is not None and "debounce" not in passed:
            key = render_key(debounce.get("key"), job["trigger"])
            taken = await self.scripts.take(
                keys=[redis_key("deb", job["workflow_id"], key)],
                args=[job["run_id"], repr(time.time())],
            )
            verdict = taken[0].decode() if isinstance(taken[0], bytes) else str(taken[0])
            if verdict == "wait":
                # A later trigger moved the run on: come back when it is due.
                start_at = _whole_second_after(float(taken[1]))
                following = _next_delivery(job, passed)
                due = {"resume_at": start_at.isoformat(), "job_id": delivery_job_id(following)}
                await self._record(db, job, DEBOUNCED, due)
                await self.enqueuer.enqueue(following, at=start_at)
                metrics.RUNS_HELD.labels(DEBOUNCED).inc()
                return job, DEBOUNCED
            if verdict == "take":
                job = {**job, "trigger": orjson.loads(taken[1])}
            passed.append("debounce")
        throttle = flow.get("throttle")
        if throttle is not None and "throttle" not in passed:
            key = render_key(throttle.get("key"), job["trigger"])
            now = time.time()
            reserved = float(
                await self.scripts.throttle(
                    keys=[redis_key("thr", job["workflow_id"], key)],
                    args=[throttle["limit"], throttle["period_s"], repr(now)],
                )
            )
            passed.append("throttle")
            if reserved > now + _NOW_SLACK_S:
                start_at = _whole_second_after(reserved)
                following = _next_delivery(job, passed)
                detail: dict[str, Any] = {
                    "resume_at": start_at.isoformat(),
                    "key": key,
                    "limit": throttle["limit"],
                    "period_s": throttle["period_s"],
                    "job_id": delivery_job_id(following),
                }
                await self._record(db, job, THROTTLED, detail)
                await self.enqueuer.enqueue(following, at=start_at)
                metrics.RUNS_HELD.labels(THROTTLED).inc()
                return job, THROTTLED
        concurrency = flow.get("concurrency")
        if concurrency is not None and "concurrency" not in passed:
            key = render_key(concurrency.get("key"), job["trigger"])
            keys = [redis_key("conc", job["workflow_id"], key), hold_key(job["run_id"])]
            limit = concurrency["limit"]
            following = _next_delivery(job, [*passed, "concurrency"])
            arrival = _arrival_ms(job["run_id"])
            async with self._admitting:
                ahead = await self.scripts.admit(
                    keys=keys, args=[job["run_id"], limit, time.time(), "", arrival]
                )
                if int(ahead) == -2:
                    # Full: now build the commands that queue it when its turn comes.
                    blob = encode_commands(self.enqueuer.commands(following))
                    ahead = await self.scripts.admit(
                        keys=keys, args=[job["run_id"], limit, time.time(), blob, arrival]
                    )
            if int(ahead) >= 0:
                held: dict[str, Any] = {
                    "key": key,
                    "limit": limit,
                    "ahead": int(ahead),
                    "job_id": delivery_job_id(following),
                }
                await self._record(db, job, CONCURRENCY_LIMIT, held)
                metrics.RUNS_HELD.labels(CONCURRENCY_LIMIT).inc()
                return job, CONCURRENCY_LIMIT
        return job, None

    async def settle(self, job: RunJob, result: str) -> None:
        """After a delivery: give the run's concurrency place back if the run has ended."""
        flow = job.get("flow") or {}
        # A continuation is built from the run's row: whether it holds a place is known only
        # to the hold record, which releasing reads (a parked run's end is rare enough).
        if ("concurrency" in flow or "resume_step" in job) and result in _PLACE_ENDS:
            await self.release(job["run_id"])

    async def release(self, run_id: str) -> int:
        """Give back the place the run holds (none: nothing happens); returns the runs queued."""
        moved = await self.scripts.release(keys=[hold_key(run_id)], args=[run_id, time.time()])
        return int(moved)

    async def _record(
        self, db: DeliveryConnection, job: RunJob, reason: str, detail: dict[str, Any]
    ) -> None:
        values = records.held_values(job, reason, detail)
        await db.run(
            "record why the run waits",
            _RECORD_TRIES,
            lambda conn: records.record_held(conn, values),
        )
        log.info(
            "run held back: %s",
            reason,
            extra={"run_id": job["run_id"], "workflow_id": job["workflow_id"], **detail},
        )


def _arrival_ms(run_id: str) -> int:
    """When the run was accepted, in ms: the timestamp of its UUIDv7 id (every producer mints
    time-ordered ids), else now."""
    try:
        value = uuid.UUID(run_id)
    except ValueError:
        return int(time.time() * 1000)
    if value.version != 7:
        return int(time.time() * 1000)
    return value.int >> 80
