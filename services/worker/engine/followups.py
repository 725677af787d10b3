"""What a run's end sets off: its error workflow's run, and the wake-up of a waiting parent.

Done after the run's record is written, by the delivery that wrote it, and again by any later
delivery of the same job that finds the run already ended: a worker that died in between
leaves its job unfinished, so the job comes back and finishes this part (each follow-up is
queued at most once, spawning.py). A failure here raises, so the job is delivered again.
"""

from __future__ import annotations

import uuid

from services.worker.engine.children import ChildPark, ChildRuns
from services.worker.engine.error_workflows import ErrorRuns
from shared.nodes import Park
from shared.queue import RunJob

TERMINAL = ("succeeded", "failed", "cancelled")


class Followups:
    """Starts what a run's end or park calls for."""

    def __init__(self, children: ChildRuns, error_runs: ErrorRuns) -> None:
        self.children = children
        self.error_runs = error_runs

    async def after_end(self, job: RunJob, status: str) -> None:
        """The run ended with `status` (recorded by this delivery)."""
        if status == "failed":
            await self.error_runs.enqueue_pending(uuid.UUID(job["run_id"]))
        if status in TERMINAL:
            await self.children.wake_parent(job)

    async def after_redelivery(self, job: RunJob) -> None:
        """A delivery found its run already ended: redo what the ending delivery may not have."""
        await self.error_runs.enqueue_pending(uuid.UUID(job["run_id"]))
        await self.children.wake_parent(job)

    async def after_park(self, job: RunJob, step: int, park: Park) -> None:
        """The run parked at `step`: if it waits for a child that already ended, resume it."""
        if isinstance(park, ChildPark):
            await self.children.wake_if_ended(job, step, park.child_run_id)
