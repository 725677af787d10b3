"""Every run query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlmodel import col

from shared.db.models import RunStep, WorkflowRun


@dataclass(frozen=True)
class RunFilter:
    """What `GET /runs` narrows the caller's runs to; None matches everything."""

    status: str | None = None
    workflow_id: uuid.UUID | None = None
    # On `accepted_at`: [since, until).
    since: datetime | None = None
    until: datetime | None = None


# A run can still be cancelled while it has not ended.
CANCELLABLE = ("queued", "running", "waiting")
CANCELLED_ERROR = "cancelled by its owner"


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
            # The resume copy holds unredacted outputs for the worker only: never read here.
            .options(defer(RunStep.resume_output))
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

    async def owner_page(
        self, owner_id: uuid.UUID, where: RunFilter, limit: int, before: uuid.UUID | None
    ) -> Sequence[WorkflowRun]:
        """Up to `limit` of the owner's runs across workflows, newest first, matching `where`."""
        query = select(WorkflowRun).where(col(WorkflowRun.owner_id) == owner_id)
        if where.status is not None:
            query = query.where(col(WorkflowRun.status) == where.status)
        if where.workflow_id is not None:
            query = query.where(col(WorkflowRun.workflow_id) == where.workflow_id)
        if where.since is not None:
            query = query.where(col(WorkflowRun.accepted_at) >= where.since)
        if where.until is not None:
            query = query.where(col(WorkflowRun.accepted_at) < where.until)
        if before is not None:
            query = query.where(col(WorkflowRun.id) < before)
        result = await self.session.execute(query.order_by(col(WorkflowRun.id).desc()).limit(limit))
        return result.scalars().all()

    async def add(self, run: WorkflowRun) -> None:
        self.session.add(run)
        await self.session.flush()

    async def delete(self, run_id: uuid.UUID) -> None:
        await self.session.execute(delete(WorkflowRun).where(col(WorkflowRun.id) == run_id))

    async def cancel(self, run_id: uuid.UUID, owner_id: uuid.UUID, now: datetime) -> bool:
        """Mark the owner's unfinished run `cancelled`; False if it has ended (or is not there)."""
        result = await self.session.execute(
            update(WorkflowRun)
            .where(
                col(WorkflowRun.id) == run_id,
                col(WorkflowRun.owner_id) == owner_id,
                col(WorkflowRun.status).in_(CANCELLABLE),
            )
            .values(status="cancelled", error=CANCELLED_ERROR, finished_at=now, resume_at=None)
            .returning(col(WorkflowRun.id))
        )
        return result.scalar_one_or_none() is not None

    async def cancel_unrecorded(self, run: WorkflowRun) -> bool:
        """Record a run known only from its queued job as `cancelled`, so no worker starts it.

        A worker may claim it in the same instant: then the row is its, and is cancelled if
        still unfinished. False when it ended first.
        """
        values = {
            column.name: getattr(run, column.name)
            for column in WorkflowRun.__table__.columns  # type: ignore[attr-defined]
        }
        insert_run = insert(WorkflowRun).values(values)
        stmt = insert_run.on_conflict_do_update(
            index_elements=[col(WorkflowRun.id)],
            set_={"status": "cancelled", "error": CANCELLED_ERROR, "finished_at": run.finished_at},
            where=col(WorkflowRun.status).in_(CANCELLABLE),
        ).returning(col(WorkflowRun.id))
        result = await self.session.execute(stmt)
        return result.scalar_one_or_none() is not None
