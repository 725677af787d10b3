"""For-each items in PostgreSQL (`run_step_items`): per-item checkpoints and the final write.

An effectful item's row is written as soon as it ends, on the condition that the delivery
still owns the run, so a redelivery reuses it instead of executing the item again. Its step's
row is created (`running`) by the same statement when it does not exist yet: items belong to
a step (foreign key), and the step's own record is written when all its items ended.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from services.worker.engine.records import encode_json
from services.worker.engine.repository import UPSERT_STEPS, runs


@dataclass
class ItemRecord:
    """One `run_step_items` row; payloads already redacted, truncated and encoded."""

    index: int
    status: str
    output: orjson.Fragment | None = None
    error: str | None = None
    started_at: datetime | None = None
    duration_ms: int | None = None
    resume_output: orjson.Fragment | None = None

    def as_row(self, position: int, *, keep_resume: bool = False) -> dict[str, Any]:
        """The row as `jsonb_to_recordset` reads it."""
        return {
            "position": position,
            "item_index": self.index,
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "duration_ms": self.duration_ms,
            "resume_output": self.resume_output if keep_resume else None,
        }


@dataclass(frozen=True)
class RecordedItem:
    """An item an earlier delivery recorded: reused, never executed again."""

    record: ItemRecord
    output: Any


_ITEM_COLUMNS = """
    position int, item_index int, status text, output jsonb, error text,
    started_at timestamptz, duration_ms int, resume_output jsonb"""
_UPSERT_ITEMS = f"""
    INSERT INTO run_step_items (run_id, position, item_index, status, output, error,
                                started_at, duration_ms, resume_output)
    SELECT run.id, i.position, i.item_index, i.status, i.output, i.error, i.started_at,
           i.duration_ms, i.resume_output
    FROM run, jsonb_to_recordset(CAST(:items AS jsonb)) AS i({_ITEM_COLUMNS})
    ON CONFLICT (run_id, position, item_index) DO UPDATE SET
        status = EXCLUDED.status, output = EXCLUDED.output, error = EXCLUDED.error,
        started_at = EXCLUDED.started_at, duration_ms = EXCLUDED.duration_ms,
        resume_output = EXCLUDED.resume_output
"""  # noqa: S608
_CHECKPOINT_ITEMS = text(
    f"""
    WITH run AS (
        SELECT id FROM workflow_runs
        WHERE id = :run_id AND attempt = :attempt AND status = 'running'
    ), step AS (
        INSERT INTO run_steps (run_id, position, node_id, type, status, attempt)
        SELECT run.id, :position, :node_id, :type, 'running', 0 FROM run
        ON CONFLICT (run_id, position) DO NOTHING
    ), upserted AS ({_UPSERT_ITEMS})
    SELECT count(*) FROM run
    """  # noqa: S608
).bindparams(bindparam("run_id", type_=runs.c.id.type))
_RECORDED_ITEMS = text(
    """
    SELECT position, item_index, status, output, error, started_at, duration_ms, resume_output
    FROM run_step_items WHERE run_id = :run_id AND resume_output IS NOT NULL
    """
).bindparams(bindparam("run_id", type_=runs.c.id.type))
# As repository's final write, with the items of the run's for-each steps beside its steps
# (the steps CTE comes first in the text; the foreign key is checked at the statement's end).
_FINISH_WITH_ITEMS = text(
    f"""
    WITH run AS (
        UPDATE workflow_runs
        SET status = CASE WHEN status = 'cancelled' THEN status ELSE :status END,
            error = CASE WHEN status = 'cancelled' THEN error ELSE :error END,
            finished_at = :finished_at, duration_ms = :duration_ms, resume_at = NULL
        WHERE id = :run_id AND attempt = :attempt AND status IN ('running', 'cancelled')
        RETURNING id
    ), upserted AS ({UPSERT_STEPS}), items AS ({_UPSERT_ITEMS})
    SELECT count(*) FROM run
    """  # noqa: S608
).bindparams(bindparam("run_id", type_=runs.c.id.type))


async def checkpoint_items(
    conn: AsyncConnection,
    run_id: uuid.UUID,
    attempt: int,
    step: dict[str, Any],
    items: list[dict[str, Any]],
) -> bool:
    """Write these items of step `step` (position, node_id, type); False when not ours."""
    written = await conn.scalar(
        _CHECKPOINT_ITEMS,
        {
            "run_id": run_id,
            "attempt": attempt,
            **step,
            "items": orjson.dumps(items).decode(),
        },
    )
    return bool(written)


async def recorded_items(
    conn: AsyncConnection, run_id: uuid.UUID
) -> dict[int, dict[int, RecordedItem]]:
    """Items earlier deliveries recorded for reuse, by step position then item index."""
    found: dict[int, dict[int, RecordedItem]] = {}
    for row in await conn.execute(_RECORDED_ITEMS, {"run_id": run_id}):
        values = row._mapping
        record = ItemRecord(
            values["item_index"],
            values["status"],
            output=_fragment(values["output"]),
            error=values["error"],
            started_at=values["started_at"],
            duration_ms=values["duration_ms"],
            resume_output=_fragment(values["resume_output"]),
        )
        found.setdefault(values["position"], {})[record.index] = RecordedItem(
            record, values["resume_output"]
        )
    return found


async def finish_run_with_items(
    conn: AsyncConnection, values: dict[str, Any], items: list[dict[str, Any]]
) -> bool:
    """repository.finish_run's write (`values` its bind parameters), with the items."""
    applied = await conn.scalar(
        _FINISH_WITH_ITEMS, {**values, "items": orjson.dumps(items).decode()}
    )
    return bool(applied)


def _fragment(value: Any) -> orjson.Fragment | None:
    return None if value is None else orjson.Fragment(encode_json(value))
