"""The final record of a run that ended (succeeded, failed, cancelled): one statement.

Its steps, its for-each items and, for a failed run of a workflow with `on_error`, its error
workflow's run are written together, and only while this delivery still owns the run.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from services.worker import metrics
from services.worker.engine import items, repository
from services.worker.engine.delivery import DeliveryConnection
from services.worker.engine.runner import FAILED, RunOutcome

log = logging.getLogger("services.worker.engine.service")

# The final write is worth waiting for: failing it means the job is re-run and its nodes' side
# effects happen again. 8 tries span ~16 s, a PostgreSQL restart (service.py says more).
FINISH_TRIES = 8


def _failed_step(outcome: RunOutcome) -> str | None:
    # The node whose failure ended the run (an error workflow's trigger names it).
    if outcome.status != FAILED:
        return None
    failed = [step.node_id for step in outcome.steps if step.status == FAILED]
    return failed[-1] if failed else None


async def record_finished(
    db: DeliveryConnection,
    run_id: uuid.UUID,
    attempt: int,
    outcome: RunOutcome,
    clock: float,
    ids: dict[str, str],
) -> str:
    """Write the finished run's steps and status in one statement; the status, or
    "superseded" when a later delivery took the run over (this record is discarded)."""
    elapsed = time.perf_counter() - clock
    steps = [step.as_row() for step in outcome.steps]
    values = repository.finish_values(
        run_id=run_id,
        attempt=attempt,
        status=outcome.status,
        error=outcome.error,
        finished_at=datetime.now(UTC),
        duration_ms=int(elapsed * 1000),
        steps=steps,
        failed_step=_failed_step(outcome),
    )
    if outcome.item_rows:
        applied = await db.run(
            "record the run",
            FINISH_TRIES,
            lambda conn: items.finish_run_with_items(conn, values, outcome.item_rows),
        )
    else:
        applied = await db.run(
            "record the run", FINISH_TRIES, lambda conn: repository.finish_run(conn, values)
        )
    if not applied:
        log.warning(
            "a later delivery took this run over; this delivery's record is discarded",
            extra={**ids, "attempt": attempt},
        )
        return "superseded"
    metrics.RUNS.labels(outcome.status).inc()
    metrics.RUN_DURATION.labels(outcome.status).observe(elapsed)
    log.info(
        "run %s",
        outcome.status,
        extra={
            **ids,
            "status": outcome.status,
            "attempt": attempt,
            "duration_ms": int(elapsed * 1000),
            "error": outcome.error,
        },
    )
    return outcome.status
