"""Replays: a new run of a past run's input that reuses the past run's steps before `from_step`.

The steps before `from_step` (in the order of the replayed version's nodes) are copied into the
new run as recorded steps, matched by node id and type; the worker reuses a recorded step
instead of executing it (the durable-step rule of engine v2), so no effect before `from_step`
happens again. `from_step` and everything after it run anew. Without `from_step`, every step
runs anew. `version` picks the nodes: the ones the past run executed ("original", the default)
or the workflow's current ones ("current").

What is reused is the step's recorded output: redacted (secret-looking keys hidden) and cut at
the step payload limit, as `GET /runs/{id}` shows it. A step that did not run in the past run
(skipped, or never reached) has nothing to reuse and runs anew.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON
from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.runs.repository import RunRepository
from services.workflows.runs.schemas import ReplayIn
from services.workflows.runs.service import RunNotFound, new_run
from services.workflows.workflows.repository import WorkflowRepository
from shared.db.models import WorkflowRun

TERMINAL = ("succeeded", "failed", "cancelled")
REUSABLE = ("succeeded", "failed")


class ReplayRefused(Exception):
    """The replay cannot be made: `status` (404, 409, 422) and why."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


async def prepare(
    session: AsyncSession, owner_id: uuid.UUID, run_id: uuid.UUID, body: ReplayIn
) -> tuple[WorkflowRun, list[dict[str, Any]]]:
    """The replay's queued run and its reused steps (not added to the session yet).

    Raises RunNotFound for an unknown run or someone else's, ReplayRefused otherwise.
    """
    runs = RunRepository(session)
    original = await runs.get(run_id)
    if original is None or original.owner_id != owner_id:
        raise RunNotFound(run_id)
    if original.status not in TERMINAL:
        raise ReplayRefused(409, f"the run has not ended yet ({original.status})")
    workflows = WorkflowRepository(session)
    workflow = await workflows.owned(original.workflow_id, owner_id)
    if workflow is None:
        raise ReplayRefused(404, "the run's workflow no longer exists")
    version = original.workflow_version if body.version == "original" else workflow.version
    snapshot = await workflows.version(workflow.id, version)
    if snapshot is None:
        raise ReplayRefused(409, f"version {version} of the workflow no longer exists")
    node_ids = [node.get("id") for node in snapshot.nodes]
    start = 0
    if body.from_step is not None:
        if body.from_step not in node_ids:
            raise ReplayRefused(
                422,
                [
                    {
                        "loc": ["body", "from_step"],
                        "msg": f"no node {body.from_step!r} in version {version}",
                        "type": "value_error",
                    }
                ],
            )
        start = node_ids.index(body.from_step)

    run = new_run(workflow, original.trigger, retry_of=None)
    run.workflow_version = version
    run.replay_of = original.id
    recorded = {step.node_id: step for step in await runs.steps(original.id)}
    steps: list[dict[str, Any]] = []
    for position, node in enumerate(snapshot.nodes[:start]):
        step = recorded.get(str(node.get("id")))
        if step is None or step.type != node.get("type") or step.status not in REUSABLE:
            continue
        steps.append(
            {
                "run_id": run.id,
                "position": position,
                "node_id": step.node_id,
                "type": step.type,
                "status": step.status,
                "input": step.input,
                "output": step.output,
                "error": step.error,
                "attempt": step.attempt,
                "started_at": step.started_at,
                "duration_ms": step.duration_ms,
                # JSON null, not SQL NULL: the worker reuses only steps with a resume copy.
                "resume_output": JSON.NULL if step.output is None else step.output,
            }
        )
    return run, steps
