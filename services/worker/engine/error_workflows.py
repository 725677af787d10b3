"""Error workflows: a failed run of a workflow with `on_error` starts one run of that workflow.

Exactly once, whatever happens to the worker:
- the error workflow's run is inserted by the very statement that records the run as failed
  (`ERROR_RUN_INSERT`, a CTE of the repository's final write), under an id derived from the
  failed run: it exists if and only if the failure was recorded, and never twice;
- its job is queued right after, once (spawning.py); a worker that dies in between leaves
  the failed run's own job unfinished, so it is delivered again, finds its run ended, and
  queues the error run then (`enqueue_pending`).
A run of an error workflow carries `error_of` (so do its child runs): its failure starts no
other error workflow, so two workflows naming each other cannot loop.

The error workflow is looked up when the failure is recorded, among the failed workflow's
owner's workflows, by id or else by name (the oldest of that name); one that no longer exists
starts nothing.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.engine.spawning import Spawner, derived_run_id, job_from_row

log = logging.getLogger(__name__)

# Reads the `run` CTE of the final write (its RETURNING: id, workflow_id, status, error,
# attempt, error_of) and the binds :error_run_id, :failed_step and :finished_at.
ERROR_RUN_INSERT = """
    INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status, trigger,
                               attempt, accepted_at, error_of)
    SELECT CAST(:error_run_id AS uuid), target.id, target.owner_id, target.version, 'queued',
           jsonb_build_object(
               'body', jsonb_build_object(
                   'run_id', failed.id, 'workflow_id', failed.workflow_id,
                   'workflow_name', source.name, 'failed_step', CAST(:failed_step AS text),
                   'error', failed.error, 'attempt', failed.attempt),
               'headers', CAST('{}' AS jsonb), 'query', CAST('{}' AS jsonb),
               'method', 'ERROR',
               'received_at', to_jsonb(CAST(:finished_at AS timestamptz))),
           0, :finished_at, failed.id
    FROM run AS failed
    JOIN workflows AS source ON source.id = failed.workflow_id
    CROSS JOIN LATERAL (
        SELECT w.id, w.owner_id, w.version FROM workflows AS w
        WHERE w.owner_id = source.owner_id
          AND (CAST(w.id AS text) = source.on_error OR w.name = source.on_error)
        ORDER BY CAST(w.id AS text) = source.on_error DESC, w.created_at
        LIMIT 1
    ) AS target
    WHERE failed.status = 'failed' AND failed.error_of IS NULL
      AND source.on_error IS NOT NULL
    ON CONFLICT (id) DO NOTHING
"""

_QUEUED = text(
    """
    SELECT id, workflow_id, owner_id, workflow_version, trigger FROM workflow_runs
    WHERE id = :id AND status = 'queued'
    """
)


def error_run_id(failed_run_id: uuid.UUID) -> uuid.UUID:
    """The id of the error workflow's run for a failed run: one per failed run."""
    return derived_run_id(failed_run_id, "on_error")


class ErrorRuns:
    """Queues the error workflow's run of a failed run, once."""

    def __init__(self, db: AsyncEngine, spawner: Spawner) -> None:
        self.db = db
        self.spawner = spawner

    async def enqueue_pending(self, failed_run_id: uuid.UUID) -> None:
        """Queue the run's error-workflow run if it was recorded and is not queued yet."""
        async with self.db.connect() as conn:
            row = (await conn.execute(_QUEUED, {"id": error_run_id(failed_run_id)})).one_or_none()
        if row is None:
            return
        if await self.spawner.enqueue_once(job_from_row(row)):
            log.info(
                "error workflow started",
                extra={"run_id": str(failed_run_id), "error_run_id": str(row.id)},
            )
