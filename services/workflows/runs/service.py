"""Run history and new runs, independent of HTTP.

A run lives in two places over its life: ingest puts its job in Redis and answers 202, and the
worker writes the `workflow_runs` row when it starts. Between the two, the run exists only as
the RQ job; reads fall back to it so a run is visible from the moment of its 202.
"""

from __future__ import annotations

import re
import uuid
from contextlib import suppress
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.cursors import encode_cursor
from services.workflows.runs import waiting
from services.workflows.runs.repository import CANCELLED_ERROR, RunFilter, RunRepository
from services.workflows.runs.schemas import RunOut, RunPage, RunSummary, StepItemOut, StepOut
from services.workflows.workflows.links import CALL_WORKFLOW
from shared.db.models import Workflow, WorkflowRun, utcnow
from shared.flow import FlowSpec
from shared.hooks import callback_key
from shared.ids import uuid7
from shared.queue import CANCEL_CHANNEL, RunJob, TriggerRequest, fetch_queued_job
from shared.redaction import redact_trigger
from shared.waits import CLOSED

# RQ's job states, for a job no worker has recorded yet. "started" means a worker took it and
# has not written the row yet; "failed" means every delivery died before it could.
_RQ_STATUS = {"started": "running", "failed": "failed", "canceled": "cancelled"}
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")


class RunNotFound(Exception):
    """No such run for this caller (absent or someone else's: the caller cannot tell)."""


def summary(run: WorkflowRun) -> RunSummary:
    return RunSummary(
        id=run.id,
        workflow_id=run.workflow_id,
        workflow_version=run.workflow_version,
        status=run.status,
        attempt=run.attempt,
        error=run.error,
        retry_of=run.retry_of,
        accepted_at=run.accepted_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration_ms=run.duration_ms,
        resume_at=run.resume_at,
        parent_run_id=run.parent_run_id,
        replay_of=run.replay_of,
        **waiting.stored(run),
    )


async def owner_page(
    session: AsyncSession,
    owner_id: uuid.UUID,
    where: RunFilter,
    limit: int,
    before: uuid.UUID | None,
) -> RunPage:
    """The owner's recorded runs across all workflows, newest first (`GET /runs`).

    Like the per-workflow list, a run accepted by ingest is listed once a worker recorded it.
    """
    # One extra row tells whether another page exists without a COUNT.
    rows = await RunRepository(session).owner_page(owner_id, where, limit + 1, before)
    items = rows[:limit]
    next_cursor = encode_cursor([str(items[-1].id)]) if len(rows) > limit else None
    return RunPage(items=[summary(run) for run in items], next_cursor=next_cursor)


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _from_job(rq_status: str, job: RunJob) -> RunOut:
    status = _RQ_STATUS.get(rq_status, "queued")
    retry_of = job.get("retry_of")
    return RunOut(
        id=uuid.UUID(job["run_id"]),
        workflow_id=uuid.UUID(job["workflow_id"]),
        workflow_version=job["workflow_version"],
        status=status,
        attempt=0,
        error="the job failed before the run was recorded" if status == "failed" else None,
        **(waiting.of_job(rq_status, job) if status == "queued" else {}),
        retry_of=uuid.UUID(retry_of) if retry_of else None,
        accepted_at=_parse_time(job["trigger"].get("received_at")),
        started_at=None,
        finished_at=None,
        duration_ms=None,
        # Redacted exactly as the worker records it, so nothing shows while queued that the
        # record would hide later.
        trigger=redact_trigger(job["trigger"]),
        steps=[],
    )


async def _items_by_step(repo: RunRepository, run: WorkflowRun) -> dict[int, list[StepItemOut]]:
    """Each for-each step's items by position ([] for one that started none)."""
    positions = await repo.for_each_positions(run)
    if not positions:
        return {}
    items: dict[int, list[StepItemOut]] = {position: [] for position in positions}
    for item in await repo.items(run.id):
        items.setdefault(item.position, []).append(
            StepItemOut(
                index=item.item_index,
                status=item.status,
                output=item.output,
                error=item.error,
                started_at=item.started_at,
                duration_ms=item.duration_ms,
            )
        )
    return items


async def _from_database(
    session: AsyncSession, owner_id: uuid.UUID, run_id: uuid.UUID
) -> RunOut | None:
    repo = RunRepository(session)
    run = await repo.get(run_id)
    if run is None or run.owner_id != owner_id:
        return None
    items = await _items_by_step(repo, run)
    recorded = await repo.steps(run_id)
    children = await repo.children(run_id) if any(s.type == CALL_WORKFLOW for s in recorded) else {}
    steps = [
        StepOut(
            node_id=step.node_id,
            type=step.type,
            status=step.status,
            input=step.input,
            output=step.output,
            error=step.error,
            started_at=step.started_at,
            duration_ms=step.duration_ms,
            attempt=step.attempt,
            items=items.get(step.position),
            child_run_id=children.get(step.position),
        )
        for step in recorded
    ]
    return RunOut(**summary(run).model_dump(), trigger=run.trigger, steps=steps)


async def find(
    session: AsyncSession,
    redis: aioredis.Redis,
    owner_id: uuid.UUID,
    run_id: uuid.UUID,
    queue_name: str | None = None,
) -> RunOut:
    """The run with its steps, from PostgreSQL or, before any worker recorded it, from its job.

    With `queue_name`, why a queued run waits is refined from Redis (waiting.py); if Redis
    cannot say, the recorded reason is shown. Raises as `_find`.
    """
    run = await _find(session, redis, owner_id, run_id)
    if queue_name is not None and run.status in ("queued", "running"):
        with suppress(RedisError, OSError):
            await waiting.explain(redis, queue_name, [run])
    return run


async def _find(
    session: AsyncSession, redis: aioredis.Redis, owner_id: uuid.UUID, run_id: uuid.UUID
) -> RunOut:
    """Raises RunNotFound for an unknown run or someone else's; RedisError when the run is not in
    PostgreSQL and Redis cannot be asked (the caller cannot be told it does not exist).
    """
    run = await _from_database(session, owner_id, run_id)
    if run is not None:
        return run
    queued = await fetch_queued_job(redis, str(run_id))
    if queued is not None:
        rq_status, job = queued
        if job.get("owner_id") != str(owner_id):
            raise RunNotFound(run_id)
        return _from_job(rq_status, job)
    # A worker may have recorded and finished the run (its job is then deleted) between the
    # two reads above; the row is there now if so (each statement sees the latest commits).
    run = await _from_database(session, owner_id, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


class RunEnded(Exception):
    """The run has already ended (`status`): there is nothing left to cancel."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


async def cancel(
    session: AsyncSession, redis: aioredis.Redis, owner_id: uuid.UUID, run_id: uuid.UUID
) -> None:
    """Cancel the owner's queued, running or waiting run.

    The row decides: a queued run's job finds it `cancelled` and does nothing, a waiting run's
    continuation too, and a running run stops at its next step boundary once the worker hears
    of it (published on the cancel channel) or at its next checkpoint. Raises RunNotFound,
    RunEnded, or RedisError when the run is only in Redis and Redis cannot be asked.
    """
    repo = RunRepository(session)
    now = utcnow()
    if await repo.get(run_id) is not None:
        cancelled = await repo.cancel(run_id, owner_id, now)
    else:
        queued = await fetch_queued_job(redis, str(run_id))
        if queued is None or queued[1].get("owner_id") != str(owner_id):
            raise RunNotFound(run_id)
        cancelled = await repo.cancel_unrecorded(_unrecorded_cancelled(queued[1], now))
    if not cancelled:
        run = await repo.get(run_id)
        if run is None or run.owner_id != owner_id:
            raise RunNotFound(run_id)
        raise RunEnded(run.status)
    await session.commit()
    # Best effort after the commit: the row alone already makes the cancellation stick.
    async with redis.pipeline(transaction=False) as pipe:
        pipe.publish(CANCEL_CHANNEL, str(run_id))
        pipe.set(callback_key(str(run_id)), CLOSED, xx=True, keepttl=True)
        await pipe.execute()


def _unrecorded_cancelled(job: RunJob, now: datetime) -> WorkflowRun:
    # Never started, so nothing reads its headers again: keep their names, not their values
    # (some are credentials).
    headers = job["trigger"].get("headers") or {}
    trigger = {**job["trigger"], "headers": dict.fromkeys(headers, "[redacted]")}
    return WorkflowRun(
        id=uuid.UUID(job["run_id"]),
        workflow_id=uuid.UUID(job["workflow_id"]),
        owner_id=uuid.UUID(job["owner_id"]),
        workflow_version=job["workflow_version"],
        status="cancelled",
        trigger=trigger,
        attempt=0,
        error=CANCELLED_ERROR,
        idempotency_key=job.get("idempotency_key"),
        retry_of=uuid.UUID(job["retry_of"]) if job.get("retry_of") else None,
        accepted_at=_parse_time(job["trigger"].get("received_at")) or now,
        finished_at=now,
    )


def manual_trigger(body: Any) -> TriggerRequest:
    """The trigger of a run started through the API: the request JSON is `trigger.body`."""
    return {
        "body": body,
        "headers": {},
        "query": {},
        "method": "POST",
        "received_at": utcnow().isoformat(),
    }


def new_run(workflow: Workflow, trigger: dict[str, Any], retry_of: uuid.UUID | None) -> WorkflowRun:
    """A queued run of the workflow's current version."""
    return WorkflowRun(
        id=uuid7(),
        workflow_id=workflow.id,
        owner_id=workflow.owner_id,
        workflow_version=workflow.version,
        status="queued",
        trigger=trigger,
        attempt=0,
        retry_of=retry_of,
        accepted_at=utcnow(),
    )


def job_for(run: WorkflowRun, traceparent: str | None, flow: FlowSpec | None = None) -> RunJob:
    """The queue payload of a run (docs/ARCHITECTURE.md, "Queue contract")."""
    trigger: TriggerRequest = {
        "body": run.trigger.get("body"),
        "headers": run.trigger.get("headers") or {},
        "query": run.trigger.get("query") or {},
        "method": run.trigger.get("method") or "POST",
        "received_at": run.trigger.get("received_at") or run.accepted_at.isoformat(),
    }
    if run.trigger.get("scheduled_at"):  # a retry of a scheduled run keeps its tick
        trigger["scheduled_at"] = run.trigger["scheduled_at"]
    job: RunJob = {
        "run_id": str(run.id),
        "workflow_id": str(run.workflow_id),
        "owner_id": str(run.owner_id),
        "workflow_version": run.workflow_version,
        "trigger": trigger,
        "idempotency_key": None,
        # Only a well-formed W3C header is passed on: the worker parses it without checking.
        "traceparent": traceparent if traceparent and _TRACEPARENT.match(traceparent) else None,
        "retry_of": str(run.retry_of) if run.retry_of else None,
    }
    if run.replay_of is not None:
        job["replay_of"] = str(run.replay_of)
    if flow is not None:
        job["flow"] = flow
    return job
