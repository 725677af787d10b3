"""The activity query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from shared.ids import uuid7_floor

# One statement for a whole page of workflows. Both lateral subqueries walk the
# (workflow_id, id DESC) index: run ids are UUIDv7, so "since" is an id range, not a scan of
# the workflow's whole history.
_ACTIVITY = text(
    """
    SELECT w.id AS workflow_id, last.id AS last_id, last.status AS last_status,
           last.accepted_at AS last_accepted_at, counts.by_status
    FROM workflows AS w
    LEFT JOIN LATERAL (
        SELECT r.id, r.status, r.accepted_at FROM workflow_runs AS r
        WHERE r.workflow_id = w.id ORDER BY r.id DESC LIMIT 1
    ) AS last ON true
    LEFT JOIN LATERAL (
        SELECT jsonb_object_agg(s.status, s.n) AS by_status FROM (
            SELECT r.status, count(*) AS n FROM workflow_runs AS r
            WHERE r.workflow_id = w.id AND r.id >= :floor GROUP BY r.status
        ) AS s
    ) AS counts ON true
    WHERE w.owner_id = :owner AND w.id = ANY(:ids)
    """
).bindparams(
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("floor", type_=UUID(as_uuid=True)),
    bindparam("owner", type_=UUID(as_uuid=True)),
)


class ActivityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_workflows(
        self, owner_id: uuid.UUID, workflow_ids: Sequence[uuid.UUID], since: datetime
    ) -> Sequence[Any]:
        """Per workflow the owner owns among `workflow_ids`: its newest run and its counts by
        status since `since` (rows of workflow_id, last_id, last_status, last_accepted_at,
        by_status). Anyone else's ids simply yield no row."""
        floor = uuid7_floor(int(since.timestamp() * 1000))
        result = await self.session.execute(
            _ACTIVITY, {"ids": list(workflow_ids), "floor": floor, "owner": owner_id}
        )
        return result.all()
