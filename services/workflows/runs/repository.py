"""Every run query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer
from sqlmodel import col

from shared.db.models import RunStep, RunStepItem, WorkflowRun

# The positions of a version's for-each nodes, computed in PostgreSQL (the nodes can be large).
_FOR_EACH_POSITIONS = text(
    """
    SELECT coalesce(array_agg(n.position - 1), '{}')
    FROM workflow_versions AS v, jsonb_array_elements(v.nodes) WITH ORDINALITY AS n(node, position)
    WHERE v.workflow_id = :workflow_id AND v.version = :version
      AND jsonb_typeof(n.node -> 'for_each') = 'string'
    """
).bindparams(bindparam("workflow_id", type_=WorkflowRun.__table__.c.workflow_id.type))  # type: ignore[attr-defined]


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

    async def for_each_positions(self, run: WorkflowRun) -> set[int]:
        """The step positions of the run's version that are for-each steps."""
        positions = await self.session.scalar(
            _FOR_EACH_POSITIONS,
            {"workflow_id": run.workflow_id, "version": run.workflow_version},
        )
        return set(positions or ())

    async def items(self, run_id: uuid.UUID) -> Sequence[RunStepItem]:
        """The run's for-each items, by step then item order (no resume copies)."""
        result = await self.session.execute(
            select(RunStepItem)
            .options(defer(RunStepItem.resume_output))
            .where(col(RunStepItem.run_id) == run_id)
            .order_by(col(RunStepItem.position), col(RunStepItem.item_index))
        )
        return result.scalars().all()

    async def children(self, run_id: uuid.UUID) -> dict[int, uuid.UUID]:
        """The child runs the run's `call_workflow` steps started, by step position."""
        result = await self.session.execute(
            select(col(WorkflowRun.parent_step), col(WorkflowRun.id))
            .where(col(WorkflowRun.parent_run_id) == run_id)
            .order_by(col(WorkflowRun.id))
        )
        return {position: child for position, child in result.all() if position is not None}

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

    async def add_steps(self, steps: Sequence[dict[str, Any]]) -> None:
        """Insert prepared `run_steps` rows (a replay's reused steps) as they are."""
        if steps:
            await self.session.execute(insert(RunStep), list(steps))

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
            .values(
                status="cancelled",
                error=CANCELLED_ERROR,
                finished_at=now,
                # A parked child keeps a resume time: the worker's due-run poller then delivers
                # its continuation once more, which finds it cancelled and wakes its parent.
                resume_at=case(
                    (
                        and_(
                            col(WorkflowRun.status) == "waiting",
                            col(WorkflowRun.parent_run_id).is_not(None),
                        ),
                        now,
                    ),
                    else_=None,
                ),
            )
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
