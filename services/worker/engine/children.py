"""Child runs: what a `call_workflow` step starts, waits for, and is woken by.

- Start: the step's child run id derives from (parent run, step), so a redelivered step names
  the same child; the row is inserted `queued` (with `parent_run_id`, `parent_step`, `depth`)
  and its job queued once (spawning.py). The target is looked up among the parent's owner's
  workflows only, by id or name.
- Wait: the parent parks like a `wait_for_callback` (status `waiting`, no worker held) until
  `timeout_s`. Whichever of the two ends second wakes it: the child when it ends and finds its
  parent waiting, or the parent when it has parked and finds its child already ended; both
  queue the same continuation under one marker, so it is queued once.
- Resume: the parked step reads the child's status and last step output from PostgreSQL. A
  wake-up lost to a crash still resumes the parent at its timeout, with the child's result if
  the child has ended by then.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.engine.spawning import (
    Spawner,
    derived_run_id,
    job_from_row,
    system_trigger,
)
from shared.nodes import CallWorkflow, Park
from shared.queue import RunJob

log = logging.getLogger(__name__)

# A run may call a child, whose child may call another...: at most this deep.
MAX_DEPTH = 10
_TERMINAL = ("succeeded", "failed", "cancelled")

_TARGET = text(
    """
    SELECT id, version, CAST(id AS text) = :ref AS by_id FROM workflows
    WHERE owner_id = :owner AND (CAST(id AS text) = :ref OR name = :ref)
    ORDER BY by_id DESC, created_at LIMIT 2
    """
)
_PARENT = text("SELECT depth, error_of FROM workflow_runs WHERE id = :id")
_INSERT_CHILD = text(
    """
    INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status, trigger,
                               attempt, accepted_at, parent_run_id, parent_step, depth, error_of)
    VALUES (:id, :workflow_id, :owner_id, :version, 'queued', CAST(:trigger AS jsonb), 0, now(),
            :parent_run_id, :parent_step, :depth, :error_of)
    ON CONFLICT (id) DO NOTHING
    """
)
_RUN = text(
    """
    SELECT id, workflow_id, owner_id, workflow_version, trigger, status, waiting_step,
           parent_run_id, parent_step, error
    FROM workflow_runs WHERE id = :id
    """
)
_CHILD_STATUS = text(
    "SELECT status, error FROM workflow_runs WHERE id = :id AND parent_run_id = :parent"
)
_LAST_OUTPUT = text(
    """
    SELECT output FROM run_steps
    WHERE run_id = :id AND status IN ('succeeded', 'failed')
    ORDER BY position DESC LIMIT 1
    """
)


class ChildRefused(Exception):
    """The child run cannot start (`message` says why): the step fails with it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ChildPark(Park):
    """A park until the child run `child_run_id` ends (or the step's timeout)."""

    child_run_id: str = ""


@dataclass(frozen=True)
class ChildResult:
    """How a child run ended, as its parent's step sees it."""

    run_id: str
    status: str
    error: str | None
    output: Any

    def as_output(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "status": self.status, "output": self.output}


def wake_marker(parent_run_id: str, step: int) -> str:
    return f"wake:{parent_run_id}:{step}"


def with_parent(job: RunJob, row: Any) -> RunJob:
    """`job` with the parent it may have to wake, when the row has one."""
    if row.parent_run_id is not None and row.parent_step is not None:
        job["parent_run_id"] = str(row.parent_run_id)
        job["parent_step"] = int(row.parent_step)
    return job


class ChildRuns:
    """Starts child runs and connects them with their waiting parents."""

    def __init__(self, db: AsyncEngine, spawner: Spawner) -> None:
        self.db = db
        self.spawner = spawner

    async def start(
        self, parent_run_id: str, owner_id: str, step: int, call: CallWorkflow, item: Any = None
    ) -> str:
        """Start (or find, on a redelivery) the child run of `step`; return its id.

        Raises ChildRefused when the workflow is not the owner's or nesting is too deep.
        """
        parent_id = uuid.UUID(parent_run_id)
        purpose = f"child:{step}" if item is None else f"child:{step}:{item}"
        child_id = derived_run_id(parent_id, purpose)
        async with self.db.connect() as conn:
            targets = (
                await conn.execute(_TARGET, {"ref": call.workflow, "owner": uuid.UUID(owner_id)})
            ).all()
            if not targets:
                raise ChildRefused(f"no workflow {call.workflow!r} of yours to call")
            if len(targets) > 1 and not targets[0].by_id:
                raise ChildRefused(
                    f"several of your workflows are named {call.workflow!r}; call it by id"
                )
            parent = (await conn.execute(_PARENT, {"id": parent_id})).one()
            if parent.depth + 1 > MAX_DEPTH:
                raise ChildRefused(f"workflows nested more than {MAX_DEPTH} deep")
            await conn.execute(
                _INSERT_CHILD,
                {
                    "id": child_id,
                    "workflow_id": targets[0].id,
                    "owner_id": uuid.UUID(owner_id),
                    "version": targets[0].version,
                    "trigger": orjson.dumps(system_trigger(call.body, "CALL")).decode(),
                    "parent_run_id": parent_id,
                    "parent_step": step,
                    "depth": parent.depth + 1,
                    "error_of": parent.error_of,
                },
            )
            row = (await conn.execute(_RUN, {"id": child_id})).one()
        if row.status == "queued":
            await self.spawner.enqueue_once(with_parent(job_from_row(row), row))
        return str(child_id)

    async def result(self, parent_run_id: str, child_run_id: str) -> ChildResult | None:
        """How the parent's child ended, or None while it has not."""
        async with self.db.connect() as conn:
            row = (
                await conn.execute(
                    _CHILD_STATUS,
                    {"id": uuid.UUID(child_run_id), "parent": uuid.UUID(parent_run_id)},
                )
            ).one_or_none()
            if row is None or row.status not in _TERMINAL:
                return None
            output = await conn.scalar(_LAST_OUTPUT, {"id": uuid.UUID(child_run_id)})
        return ChildResult(child_run_id, row.status, row.error, output)

    async def wake_parent(self, job: RunJob) -> None:
        """After this run ended: resume its parent if it waits for it (see the module doc)."""
        parent_run_id, step = job.get("parent_run_id"), job.get("parent_step")
        if parent_run_id is None or step is None:
            return
        async with self.db.connect() as conn:
            row = (await conn.execute(_RUN, {"id": uuid.UUID(parent_run_id)})).one_or_none()
        if row is None or row.status != "waiting" or row.waiting_step != step:
            return
        # A redelivery of a job whose run is parked (not ended) must not wake anyone.
        if await self.result(parent_run_id, job["run_id"]) is None:
            return
        continuation = with_parent(job_from_row(row), row)
        continuation["resume_step"] = step
        if await self.spawner.enqueue_once(continuation, wake_marker(parent_run_id, step)):
            log.info("child run ended; parent resumed", extra={"run_id": parent_run_id})

    async def wake_if_ended(self, job: RunJob, step: int, child_run_id: str) -> None:
        """After this run parked for its child: resume it now if the child ended first."""
        if await self.result(job["run_id"], child_run_id) is None:
            return
        continuation: RunJob = {**job, "resume_step": step}
        continuation.pop("scheduled_at", None)
        await self.spawner.enqueue_once(continuation, wake_marker(job["run_id"], step))


def child_step_end(
    child_run_id: str, timeout_s: float, ended: ChildResult | None
) -> tuple[str, Any, str | None]:
    """The parked `call_workflow` step's (status, output, error) when its wait ends."""
    if ended is None:
        message = f"child run {child_run_id} did not end within {timeout_s:g}s"
        return "failed", {"run_id": child_run_id, "error": message}, message
    if ended.status == "succeeded":
        return "succeeded", ended.as_output(), None
    message = f"child run {child_run_id} {ended.status}: {ended.error}"
    return "failed", {**ended.as_output(), "error": message}, message
