"""The RQ entry point named in the queue contract: `services.worker.jobs.execute_run`.

AutomateOS's own worker processes never call it: their consumer (consumer.py) hands each job's
payload to the engine on its long-lived event loop. It is what a stock RQ worker runs, e.g.

    rq worker --worker-class rq.worker.SimpleWorker \\
        --serializer rq.serializers.JSONSerializer --url "$REDIS_URL" automateos

so the queue stays an honest RQ queue: each job then gets an event loop, a database pool and an
HTTP client of its own (slower than our consumer, the same recorded result).
"""

from __future__ import annotations

import asyncio

from rq import get_current_job

from services.worker.config import get_worker_settings
from services.worker.runtime import WorkerRuntime
from shared.queue import RunJob
from shared.settings import get_settings


def execute_run(job: RunJob) -> str:
    """Execute one delivery of a run; return what happened (its status, or why nothing ran).

    Raises when PostgreSQL stays unreachable, so RQ re-queues the job while it has retries.
    """
    rq_job = get_current_job()
    settings = get_settings()
    # The job carries the timeout its enqueuer chose; RQ enforces it, so the run must end first.
    timeout = (rq_job.timeout if rq_job is not None else None) or settings.job_timeout_seconds
    return asyncio.run(_execute_once(job, float(timeout)))


async def _execute_once(job: RunJob, timeout_s: float) -> str:
    worker_settings = get_worker_settings().model_copy(update={"concurrency": 1})
    runtime = WorkerRuntime(get_settings(), worker_settings)
    try:
        return await runtime.execute(job, timeout_s)
    finally:
        await runtime.close()
