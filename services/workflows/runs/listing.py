"""`GET /runs`: the caller's runs across all workflows, filtered, newest first.

The console's runs page reads it. The contract (query names, `RunPage`) is shared with the CLI's
branch, which builds the same endpoint; whichever lands second keeps one of the two.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.workflows.cursors import InvalidCursor, decode_cursor, encode_cursor, invalid_cursor
from services.workflows.deps import SessionDep
from services.workflows.runs import service
from services.workflows.runs.schemas import RunPage, RunStatus
from shared.db.models import WorkflowRun
from shared.tokens import CurrentUserId

router = APIRouter(tags=["runs"])


def _aware(moment: datetime | None) -> datetime | None:
    # A time without an offset is read as UTC, as everywhere else in the API.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _before(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        [run_id] = decode_cursor(cursor, 1)
        return uuid.UUID(run_id)
    except (InvalidCursor, TypeError, ValueError):
        raise invalid_cursor() from None


async def _page(
    session: AsyncSession,
    owner_id: uuid.UUID,
    *,
    status: str | None,
    workflow_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    before: uuid.UUID | None,
    limit: int,
) -> Sequence[WorkflowRun]:
    """Up to `limit` of the owner's runs, newest first (run ids are UUIDv7: time ordered)."""
    query = select(WorkflowRun).where(col(WorkflowRun.owner_id) == owner_id)
    if status is not None:
        query = query.where(col(WorkflowRun.status) == status)
    if workflow_id is not None:
        query = query.where(col(WorkflowRun.workflow_id) == workflow_id)
    if since is not None:
        query = query.where(col(WorkflowRun.accepted_at) >= since)
    if until is not None:
        query = query.where(col(WorkflowRun.accepted_at) < until)
    if before is not None:
        query = query.where(col(WorkflowRun.id) < before)
    result = await session.execute(query.order_by(col(WorkflowRun.id).desc()).limit(limit))
    return result.scalars().all()


@router.get("/runs", response_model=RunPage)
async def list_all_runs(
    user_id: CurrentUserId,
    session: SessionDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    workflow_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RunPage:
    """The caller's runs of every workflow, newest first; `since`/`until` bound `accepted_at`
    (ISO 8601, inclusive/exclusive). Another user's workflow id simply matches nothing."""
    rows = await _page(
        session,
        user_id,
        status=status_,
        workflow_id=workflow_id,
        since=_aware(since),
        until=_aware(until),
        before=_before(cursor),
        limit=limit + 1,
    )
    items = rows[:limit]
    next_cursor = encode_cursor([str(items[-1].id)]) if len(rows) > limit else None
    return RunPage(items=[service.summary(run) for run in items], next_cursor=next_cursor)
