"""`GET /workflows/activity`: the last run and the 24-hour counts of a page of workflows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from services.workflows.activity import service
from services.workflows.activity.schemas import ActivityPage
from services.workflows.deps import SessionDep
from shared.tokens import CurrentUserId

# A page of GET /workflows is at most 100 workflows; one call covers it.
MAX_IDS = 100

router = APIRouter(tags=["workflows"])


@router.get("/workflows/activity", response_model=ActivityPage)
async def workflow_activity(
    user_id: CurrentUserId,
    session: SessionDep,
    workflow_id: Annotated[list[uuid.UUID], Query(min_length=1, max_length=MAX_IDS)],
) -> ActivityPage:
    """For each `workflow_id` (repeat the parameter, up to 100): its newest run and how many
    runs were accepted in the last 24 hours, by status. Ids that are not the caller's are
    left out of `items`."""
    return await service.activity(session, user_id, workflow_id)
