"""Every workflow query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.db.models import Workflow, WorkflowVersion


class WorkflowRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def owned(
        self, workflow_id: uuid.UUID, owner_id: uuid.UUID, *, for_update: bool = False
    ) -> Workflow | None:
        """The workflow if `owner_id` owns it; None for anyone else's, so callers answer 404.

        `for_update` locks the row until commit, so concurrent changes to one workflow take
        turns: each one bumps from the version the previous one wrote.
        """
        query = select(Workflow).where(
            col(Workflow.id) == workflow_id, col(Workflow.owner_id) == owner_id
        )
        if for_update:
            query = query.with_for_update()
        result = await self.session.execute(query)
        return result.scalar_one_or_none()

    async def page(
        self, owner_id: uuid.UUID, limit: int, after: tuple[datetime, uuid.UUID] | None
    ) -> Sequence[Workflow]:
        """Up to `limit` of the owner's workflows, newest first, after the key `after`."""
        query = select(Workflow).where(col(Workflow.owner_id) == owner_id)
        if after is not None:
            query = query.where(
                tuple_(col(Workflow.created_at), col(Workflow.id)) < tuple_(after[0], after[1])
            )
        query = query.order_by(col(Workflow.created_at).desc(), col(Workflow.id).desc())
        result = await self.session.execute(query.limit(limit))
        return result.scalars().all()

    async def referenced(self, owner_id: uuid.UUID, reference: str) -> Sequence[Workflow]:
        """The owner's workflows whose id or name is `reference` (an id match first)."""
        as_id = _as_uuid(reference)
        matches = col(Workflow.name) == reference
        if as_id is not None:
            matches = matches | (col(Workflow.id) == as_id)
        query = select(Workflow).where(col(Workflow.owner_id) == owner_id, matches)
        result = await self.session.execute(query.order_by(col(Workflow.created_at)).limit(10))
        rows = result.scalars().all()
        return sorted(rows, key=lambda workflow: workflow.id != as_id)

    async def by_token_hash(self, hashed: str) -> Workflow | None:
        result = await self.session.execute(
            select(Workflow).where(col(Workflow.webhook_token_hash) == hashed)
        )
        return result.scalar_one_or_none()

    async def batch(self, after: uuid.UUID | None, limit: int) -> Sequence[Workflow]:
        """Every owner's workflows in id order, `limit` at a time (the start-up mirror)."""
        query = select(Workflow)
        if after is not None:
            query = query.where(col(Workflow.id) > after)
        result = await self.session.execute(query.order_by(col(Workflow.id)).limit(limit))
        return result.scalars().all()

    async def add(self, workflow: Workflow) -> None:
        self.session.add(workflow)
        await self.session.flush()

    async def add_version(self, workflow: Workflow) -> None:
        """Snapshot the workflow's current nodes under its current version (immutable)."""
        self.session.add(
            WorkflowVersion(
                workflow_id=workflow.id,
                version=workflow.version,
                nodes=workflow.nodes,
                created_at=workflow.updated_at,
            )
        )
        await self.session.flush()

    async def versions(
        self, workflow_id: uuid.UUID, limit: int, before: int | None
    ) -> Sequence[WorkflowVersion]:
        """Up to `limit` snapshots of the workflow, newest first, older than version `before`."""
        query = select(WorkflowVersion).where(col(WorkflowVersion.workflow_id) == workflow_id)
        if before is not None:
            query = query.where(col(WorkflowVersion.version) < before)
        query = query.order_by(col(WorkflowVersion.version).desc()).limit(limit)
        result = await self.session.execute(query)
        return result.scalars().all()

    async def version(self, workflow_id: uuid.UUID, version: int) -> WorkflowVersion | None:
        """One snapshot of the workflow (what a run of that version executed)."""
        result = await self.session.execute(
            select(WorkflowVersion).where(
                col(WorkflowVersion.workflow_id) == workflow_id,
                col(WorkflowVersion.version) == version,
            )
        )
        return result.scalar_one_or_none()

    async def delete(self, workflow: Workflow) -> None:
        # The foreign keys cascade to versions, runs and steps.
        await self.session.execute(delete(Workflow).where(col(Workflow.id) == workflow.id))


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
