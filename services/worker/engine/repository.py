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

from shared.db.models import metadata

TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
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
            "error": None,
            "finished_at": None,
            "duration_ms": None,
        },
        # A redelivered job whose run already ended must not run again.
        where=runs.c.status.not_in(TERMINAL_STATUSES),
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
_FINISH = text(
    """
    WITH run AS (
        UPDATE workflow_runs
        SET status = :status, error = :error, finished_at = :finished_at,
            duration_ms = :duration_ms
        WHERE id = :run_id AND attempt = :attempt AND status = 'running'
        RETURNING id
    ), earlier AS (
        DELETE FROM run_steps WHERE run_id IN (SELECT id FROM run)
    ), added AS (
        INSERT INTO run_steps (run_id, position, node_id, type, status, input, output, error,
                               attempt, started_at, duration_ms)
        SELECT run.id, s.position, s.node_id, s.type, s.status, s.input, s.output, s.error,
               s.attempt, s.started_at, s.duration_ms
        FROM run, jsonb_to_recordset(CAST(:steps AS jsonb)) AS s(
            position int, node_id text, type text, status text, input jsonb, output jsonb,
            error text, attempt int, started_at timestamptz, duration_ms int)
    )
    SELECT count(*) FROM run
    """
).bindparams(bindparam("run_id", type_=runs.c.id.type))


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


async def finish_run(
    conn: AsyncConnection,
    *,
    run_id: uuid.UUID,
    attempt: int,
    status: str,
    error: str | None,
    finished_at: datetime,
    duration_ms: int,
    steps: list[dict[str, Any]],
) -> bool:
    """Write the steps and the run's final status in one statement (one round trip).

    Applies only while the run is still `running` under this `attempt`: when a later delivery
    of the same job took the run over, this one's record is discarded and False returned.
    """
    applied = await conn.scalar(
        _FINISH,
        {
            "run_id": run_id,
            "attempt": attempt,
            "status": status,
            "error": error,
            "finished_at": finished_at,
            "duration_ms": duration_ms,
            "steps": orjson.dumps(steps).decode(),
        },
    )
    return bool(applied)


async def stale_running_runs(
    conn: AsyncConnection, started_before: datetime, limit: int
) -> list[uuid.UUID]:
    """Runs still `running` that started before `started_before`, oldest first (bounded)."""
    stmt = (
        select(runs.c.id)
        .where(runs.c.status == "running", runs.c.started_at < started_before)
        .order_by(runs.c.started_at)
        .limit(limit)
    )
    return list((await conn.scalars(stmt)).all())


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
    "fail_lost_runs",
    "finish_run",
    "load_nodes",
    "record_duplicate",
    "stale_running_runs",
    "start_run",
]
