"""The run row of a run the worker held back: `queued`, with why it waits.

Written before the delivery is acknowledged, so a reader sees the reason from then on; a run a
worker already claimed keeps its row as it is (the reason only matters while it is queued).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.queue import RunJob
from shared.redaction import redact_trigger

_HELD = text(
    """
    INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status, trigger,
                               attempt, idempotency_key, retry_of, accepted_at,
                               waiting_reason, waiting_detail)
    VALUES (:id, :workflow_id, :owner_id, :workflow_version, 'queued', :trigger, 0,
            :idempotency_key, :retry_of, :accepted_at, :reason, :detail)
    ON CONFLICT (id) DO UPDATE SET waiting_reason = EXCLUDED.waiting_reason,
                                   waiting_detail = EXCLUDED.waiting_detail
    WHERE workflow_runs.status = 'queued'
    """
).bindparams(
    bindparam("id", type_=UUID()),
    bindparam("workflow_id", type_=UUID()),
    bindparam("owner_id", type_=UUID()),
    bindparam("retry_of", type_=UUID()),
    bindparam("trigger", type_=JSONB()),
    bindparam("detail", type_=JSONB()),
)


def _accepted_at(job: RunJob) -> datetime:
    received = job["trigger"].get("received_at")
    try:
        parsed = datetime.fromisoformat(received) if isinstance(received, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        return datetime.now(UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def held_values(job: RunJob, reason: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The bind parameters of one held run's row."""
    return {
        "id": uuid.UUID(job["run_id"]),
        "workflow_id": uuid.UUID(job["workflow_id"]),
        "owner_id": uuid.UUID(job["owner_id"]),
        "workflow_version": job["workflow_version"],
        # Redacted as the engine records it: credentials keep their names only.
        "trigger": redact_trigger(job["trigger"]),
        # Left to the claim: a held duplicate must not fail on the idempotency constraint
        # here (ingest's dedupe key already answered the sender with the first run).
        "idempotency_key": None,
        "retry_of": uuid.UUID(job["retry_of"]) if job.get("retry_of") else None,
        "accepted_at": _accepted_at(job),
        "reason": reason,
        # Through orjson: the detail holds only JSON types, and datetimes as ISO strings.
        "detail": orjson.loads(orjson.dumps(detail)),
    }


async def record_held(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """Insert the queued row with its reason, or update the reason of a still-queued one."""
    await conn.execute(_HELD, values)
