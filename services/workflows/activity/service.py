"""What a page of workflows did lately: the newest run and the runs per status in a window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.activity.repository import ActivityRepository
from services.workflows.activity.schemas import ActivityPage, LastRun, WorkflowActivity
from shared.db.models import utcnow

WINDOW = timedelta(hours=24)


async def activity(
    session: AsyncSession, owner_id: uuid.UUID, workflow_ids: Sequence[uuid.UUID]
) -> ActivityPage:
    """Activity of the caller's workflows among `workflow_ids`, in the order asked.

    Ids that are unknown or someone else's are left out, exactly as if they did not exist.
    """
    since = utcnow() - WINDOW
    rows = await ActivityRepository(session).for_workflows(owner_id, workflow_ids, since)
    found: dict[uuid.UUID, WorkflowActivity] = {}
    for row in rows:
        last = None
        if row.last_id is not None:
            last = LastRun(id=row.last_id, status=row.last_status, accepted_at=row.last_accepted_at)
        found[row.workflow_id] = WorkflowActivity(
            workflow_id=row.workflow_id, last_run=last, runs_by_status=row.by_status or {}
        )
    ordered = [found[i] for i in dict.fromkeys(workflow_ids) if i in found]
    return ActivityPage(since=since, items=ordered)
