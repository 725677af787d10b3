"""Every run query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.db.models import RunStep, WorkflowRun


class RunRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, run_id: uuid.UUID) -> WorkflowRun | None:
        result = await self.session.execute(
            select(WorkflowRun).where(col(WorkflowRun.id) == run_id)
        )
        return result.scalar_one_or_none()

    async def steps(self, run_id: uuid.UUID) -> Sequence[RunStep]:
        result = await self.session.execute(
            select(RunStep)
            .where(col(RunStep.run_id) == run_id)
            .order_by(col(RunStep.position), col(RunStep.id))
        )
        return result.scalars().all()

    async def page(
        self,
        workflow_id: uuid.UUID,
        owner_id: uuid.UUID,
        status: str | None,
        limit: int,
        before: uuid.UUID | None,
    ) -> Sequence[WorkflowRun]:
        """Up to `limit` runs of a workflow, newest first (run ids are UUIDv7: time ordered)."""
        query = select(WorkflowRun).where(
            col(WorkflowRun.workflow_id) == workflow_id, col(WorkflowRun.owner_id) == owner_id
        )
        if status is not None:
            query = query.where(col(WorkflowRun.status) == status)
        if before is not None:
            query = query.where(col(WorkflowRun.id) < before)
        result = await self.session.execute(query.order_by(col(WorkflowRun.id).desc()).limit(limit))
        return result.scalars().all()

    async def add(self, run: WorkflowRun) -> None:
        self.session.add(run)
        await self.session.flush()

    async def delete(self, run_id: uuid.UUID) -> None:
        await self.session.execute(delete(WorkflowRun).where(col(WorkflowRun.id) == run_id))
