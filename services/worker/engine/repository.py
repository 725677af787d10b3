"""Every query the worker sends. One statement per call, so each is one round trip.

The worker's engine runs in AUTOCOMMIT: a single statement is atomic by itself, and skipping
BEGIN/COMMIT saves two round trips per call. Where several writes must be atomic together
(the steps and the final run update), they are one statement with data-modifying CTEs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Table, bindparam, func, literal, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from services.worker.engine.error_workflows import ERROR_RUN_INSERT, error_run_id
from shared.db.models import metadata

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
# A first delivery (or a redelivery of it) may take over only a run nobody parked yet.
CLAIMABLE_STATUSES = ("queued", "running")
IDEMPOTENCY_CONSTRAINT = "uq_workflow_runs_idempotency"
WORKFLOW_FK_CONSTRAINT = "fk_workflow_runs_workflow_id_workflows"

runs: Table = metadata.tables["workflow_runs"]
versions: Table = metadata.tables["workflow_versions"]


def _build_start() -> Any:
    values = {
        "id": bindparam("id"),
        "workflow_id": bindparam("workflow_id"),
        "owner_id": bindparam("owner_id"),
        "workflow_version": bindparam("workflow_version"),
        "status": literal("running"),
        "trigger": bindparam("trigger", type_=runs.c.trigger.type),
        "attempt": literal(1),
        "idempotency_key": bindparam("idempotency_key"),
        "retry_of": bindparam("retry_of"),
        "accepted_at": bindparam("accepted_at"),
        "started_at": bindparam("started_at"),
    }
    stmt = insert(runs).values(values)
    return stmt.on_conflict_do_update(
        index_elements=[runs.c.id],
        set_={
            "status": "running",
            "attempt": runs.c.attempt + 1,
            "started_at": stmt.excluded.started_at,
            # A debounced run starts with the last trigger folded into it (flow/gate.py).
            "trigger": stmt.excluded.trigger,
            "error": None,
            "finished_at": None,
            "duration_ms": None,
        },
        # A redelivered job whose run already ended must not run again, and one whose run
        # was parked meanwhile leaves it to the continuation.
        where=runs.c.status.in_(CLAIMABLE_STATUSES) & runs.c.waiting_step.is_(None),
    ).returning(runs.c.attempt)


# Built once: SQLAlchemy caches the compiled form, asyncpg the prepared statement.
_START = _build_start()
_LOAD_NODES = select(versions.c.nodes).where(
    versions.c.workflow_id == bindparam("workflow_id"), versions.c.version == bindparam("version")
)
_HOLDER_OF_KEY = select(runs.c.id).where(
    runs.c.workflow_id == bindparam("workflow_id"),
    runs.c.idempotency_key == bindparam("idempotency_key"),
)
# The continuation of a run parked at step :position. A run resumed from that step and still
# `running` was left by a continuation that died: its redelivery takes it over.
_RESUME = (
    update(runs)
    .where(
        runs.c.id == bindparam("run_id"),
        runs.c.waiting_step == bindparam("position"),
        runs.c.status.in_(("waiting", "running")),
    )
    .values(
        status="running",
        attempt=runs.c.attempt + 1,
        started_at=bindparam("started_at"),
        resume_at=None,
    )
    .returning(runs.c.attempt)
)
_STEP_COLUMNS = """
    position int, node_id text, type text, status text, input jsonb, output jsonb,
    error text, attempt int, started_at timestamptz, duration_ms int, resume_output jsonb"""
# Built from constants only (no user input), hence the noqa on the f-strings below.
# Public: the items' final write (engine/items.py) writes the steps beside the items.
UPSERT_STEPS = _UPSERT_STEPS = f"""
    INSERT INTO run_steps (run_id, position, node_id, type, status, input, output, error,
                           attempt, started_at, duration_ms, resume_output)
    SELECT run.id, s.position, s.node_id, s.type, s.status, s.input, s.output, s.error,
           s.attempt, s.started_at, s.duration_ms, s.resume_output
    FROM run, jsonb_to_recordset(CAST(:steps AS jsonb)) AS s({_STEP_COLUMNS})
    ON CONFLICT (run_id, position) DO UPDATE SET
        node_id = EXCLUDED.node_id, type = EXCLUDED.type, status = EXCLUDED.status,
        input = EXCLUDED.input, output = EXCLUDED.output, error = EXCLUDED.error,
        attempt = EXCLUDED.attempt, started_at = EXCLUDED.started_at,
        duration_ms = EXCLUDED.duration_ms, resume_output = EXCLUDED.resume_output
"""  # noqa: S608
# Steps written while the run goes on, if this delivery still owns it (same attempt, still
# running): a cancelled or taken-over run is not written to, and the caller stops.
_CHECKPOINT = text(
    f"""
    WITH run AS (
        SELECT id FROM workflow_runs
        WHERE id = :run_id AND attempt = :attempt AND status = 'running'
    ), upserted AS ({_UPSERT_STEPS})
    SELECT count(*) FROM run
    """  # noqa: S608
).bindparams(bindparam("run_id", type_=runs.c.id.type))
_PARK = text(
    f"""
    WITH run AS (
        UPDATE workflow_runs
        SET status = 'waiting', resume_at = :resume_at, waiting_step = :position,
            waiting_reason = :reason, waiting_detail = NULL, queue = :queue
        WHERE id = :run_id AND attempt = :attempt AND status = 'running'
        RETURNING id
    ), upserted AS ({_UPSERT_STEPS})
    SELECT count(*) FROM run
    """  # noqa: S608
).bindparams(bindparam("run_id", type_=runs.c.id.type))
_RECORDED_STEPS = text(
    """
    SELECT position, node_id, type, status, input, output, error, attempt, started_at,
           duration_ms, resume_output
    FROM run_steps WHERE run_id = :run_id AND resume_output IS NOT NULL
    """
).bindparams(bindparam("run_id", type_=runs.c.id.type))
# A run cancelled while this delivery ran stays `cancelled` (with its error), but gets the
# steps this delivery executed. Every position of the version is written (an earlier
# delivery's rows are overwritten), and the resume copies of outputs go with the rewrite.
# A failed run of a workflow with `on_error` also gets its error workflow's run, in the same
# statement (error_workflows.py).
_FINISH = text(
    f"""
    WITH run AS (
        UPDATE workflow_runs
        SET status = CASE WHEN status = 'cancelled' THEN status ELSE :status END,
            error = CASE WHEN status = 'cancelled' THEN error ELSE :error END,
            finished_at = :finished_at, duration_ms = :duration_ms, resume_at = NULL
        WHERE id = :run_id AND attempt = :attempt AND status IN ('running', 'cancelled')
        RETURNING id, workflow_id, status, error, attempt, error_of
    ), upserted AS ({_UPSERT_STEPS}), errored AS ({ERROR_RUN_INSERT})
    SELECT count(*) FROM run
    """  # noqa: S608
).bindparams(
    bindparam("run_id", type_=runs.c.id.type), bindparam("error_run_id", type_=runs.c.id.type)
)


@dataclass(frozen=True)
class StartedRun:
    """The run is ours to execute: this is delivery number `attempt`."""

    attempt: int
    kind: Literal["started"] = "started"


@dataclass(frozen=True)
class AlreadyFinished:
    """The run already reached a terminal status: a redelivered job does nothing."""

    kind: Literal["finished"] = "finished"


@dataclass(frozen=True)
class DuplicateDelivery:
    """Another run holds this idempotency key (`holder`, None if it vanished meanwhile)."""

    holder: uuid.UUID | None
    kind: Literal["duplicate"] = "duplicate"


@dataclass(frozen=True)
class WorkflowGone:
    """The workflow was deleted after the job was queued: there is nothing to record on."""

    kind: Literal["gone"] = "gone"


StartResult = StartedRun | AlreadyFinished | DuplicateDelivery | WorkflowGone


def _constraint(exc: IntegrityError) -> str:
    cause = getattr(exc.orig, "__cause__", None)
    name = getattr(cause, "constraint_name", None)
    if isinstance(name, str):
        return name
    message = str(exc.orig)
    for known in (IDEMPOTENCY_CONSTRAINT, WORKFLOW_FK_CONSTRAINT):
        if known in message:
            return known
    return ""


async def start_run(conn: AsyncConnection, values: dict[str, Any]) -> StartResult:
    """Insert the run as `running`, or move an unfinished one back to `running`, attempt + 1.

    `values` holds the bind parameters of `_START` (id, workflow_id, owner_id, ...).
    """
    try:
        attempt = (await conn.execute(_START, values)).scalar_one_or_none()
    except IntegrityError as exc:
        constraint = _constraint(exc)
        if constraint == IDEMPOTENCY_CONSTRAINT:
            holder = await conn.scalar(
                _HOLDER_OF_KEY,
                {
                    "workflow_id": values["workflow_id"],
                    "idempotency_key": values["idempotency_key"],
                },
            )
            return DuplicateDelivery(holder)
        if constraint == WORKFLOW_FK_CONSTRAINT:
            return WorkflowGone()
        raise
    if attempt is None:
        return AlreadyFinished()
    return StartedRun(int(attempt))


async def resume_run(
    conn: AsyncConnection, run_id: uuid.UUID, position: int, started_at: datetime
) -> int | None:
    """Take a parked run back (`running`, attempt + 1) to resume it at step `position`.

    None when the run is not parked there any more (cancelled, finished, resumed elsewhere).
    """
    attempt = await conn.scalar(
        _RESUME, {"run_id": run_id, "position": position, "started_at": started_at}
    )
    return None if attempt is None else int(attempt)


async def recorded_steps(conn: AsyncConnection, run_id: uuid.UUID) -> list[dict[str, Any]]:
    """The steps earlier deliveries recorded for reuse (effectful and parked steps)."""
    rows = await conn.execute(_RECORDED_STEPS, {"run_id": run_id})
    return [dict(row._mapping) for row in rows]


async def checkpoint(
    conn: AsyncConnection, run_id: uuid.UUID, attempt: int, steps: list[dict[str, Any]]
) -> bool:
    """Write these steps now; False when the run is no longer this delivery's to continue."""
    written = await conn.scalar(
        _CHECKPOINT,
        {"run_id": run_id, "attempt": attempt, "steps": orjson.dumps(steps).decode()},
    )
    return bool(written)


async def park_run(
    conn: AsyncConnection,
    *,
    run_id: uuid.UUID,
    attempt: int,
    position: int,
    resume_at: datetime,
    steps: list[dict[str, Any]],
    reason: str = "delay",
    queue: str | None = None,
) -> bool:
    """Mark the run `waiting` at step `position` until `resume_at`, with its steps so far.

    `reason` is its `waiting_reason`: "delay", "callback", "child_run" (shared/flow.py
    WAITING_REASONS); `queue` the one its due-run poller serves (services/worker/dueruns.py).
    """
    parked = await conn.scalar(
        _PARK,
        {
            "run_id": run_id,
            "attempt": attempt,
            "position": position,
            "resume_at": resume_at,
            "steps": orjson.dumps(steps).decode(),
            "reason": reason,
            "queue": queue,
        },
    )
    return bool(parked)


async def record_duplicate(
    conn: AsyncConnection, values: dict[str, Any], error: str, now: datetime
) -> None:
    """Record a run that ran nothing because its delivery was a duplicate (key not kept)."""
    stmt = (
        insert(runs)
        .values(
            {
                **values,
                "status": "cancelled",
                "attempt": 1,
                "idempotency_key": None,
                "error": error,
                "started_at": now,
                "finished_at": now,
                "duration_ms": 0,
            }
        )
        .on_conflict_do_nothing(index_elements=[runs.c.id])
    )
    await conn.execute(stmt)


async def load_nodes(
    conn: AsyncConnection, workflow_id: uuid.UUID, version: int
) -> list[dict[str, Any]] | None:
    """The node list of one immutable workflow version, or None when there is no such version."""
    nodes = await conn.scalar(_LOAD_NODES, {"workflow_id": workflow_id, "version": version})
    return None if nodes is None else list(nodes)


def finish_values(
    *,
    run_id: uuid.UUID,
    attempt: int,
    status: str,
    error: str | None,
    finished_at: datetime,
    duration_ms: int,
    steps: list[dict[str, Any]],
    failed_step: str | None = None,
) -> dict[str, Any]:
    """The bind parameters of the run's final write (here and in items.py)."""
    return {
        "run_id": run_id,
        "attempt": attempt,
        "status": status,
        "error": error,
        "finished_at": finished_at,
        "duration_ms": duration_ms,
        "steps": orjson.dumps(steps).decode(),
        # Derived only for a failure: the hash is not paid by every run.
        "error_run_id": error_run_id(run_id) if status == "failed" else None,
        "failed_step": failed_step,
    }


async def finish_run(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Write the steps and the run's final status in one statement (one round trip).

    `values` come from `finish_values`. Applies only while the run is still `running` under
    this `attempt`: when a later delivery of the same job took the run over, this one's record
    is discarded and False returned. A failed run's error workflow run (if it names one) is
    inserted too, `failed_step` in its trigger.
    """
    applied = await conn.scalar(_FINISH, values)
    return bool(applied)


async def stale_running_runs(
    conn: AsyncConnection, started_before: datetime, limit: int
) -> list[tuple[uuid.UUID, int | None]]:
    """Runs still `running` that started before `started_before`, oldest first (bounded).

    Each with the step it last resumed at (None if never parked), which names its RQ job.
    """
    stmt = (
        select(runs.c.id, runs.c.waiting_step)
        .where(runs.c.status == "running", runs.c.started_at < started_before)
        .order_by(runs.c.started_at)
        .limit(limit)
    )
    return [(row.id, row.waiting_step) for row in await conn.execute(stmt)]


async def fail_lost_runs(
    conn: AsyncConnection, run_ids: list[uuid.UUID], started_before: datetime, error: str
) -> int:
    """Mark these runs failed, if they are still `running` and stale; return how many were."""
    stmt = (
        update(runs)
        .where(
            runs.c.id.in_(run_ids),
            runs.c.status == "running",
            runs.c.started_at < started_before,
        )
        .values(
            status="failed",
            error=error,
            finished_at=func.now(),
            duration_ms=func.floor(
                func.extract("epoch", func.now() - runs.c.started_at) * 1000
            ).cast(runs.c.duration_ms.type),
        )
    )
    result = await conn.execute(stmt)
    return int(result.rowcount)


__all__ = [
    "AlreadyFinished",
    "DuplicateDelivery",
    "StartResult",
    "StartedRun",
    "WorkflowGone",
    "checkpoint",
    "fail_lost_runs",
    "finish_run",
    "load_nodes",
    "park_run",
    "record_duplicate",
    "recorded_steps",
    "resume_run",
    "stale_running_runs",
    "start_run",
]
