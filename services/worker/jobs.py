"""The RQ entry point named in the queue contract: `services.worker.jobs.execute_run`."""

from __future__ import annotations

from rq import get_current_job

from services.worker import runtime
from shared.queue import RunJob


def execute_run(job: RunJob) -> None:
    """Execute one delivery of a run.

    Synchronous on purpose: it drives the worker process's long-lived event loop instead of
    letting RQ start a new loop (and new connections) per job. Returns nothing, since the
    run's record in PostgreSQL is its result.
    """
    rq_job = get_current_job()
    settings = runtime.current().settings
    # The job carries the timeout its enqueuer chose; RQ enforces it, so the run must end first.
    timeout = (rq_job.timeout if rq_job is not None else None) or settings.job_timeout_seconds
    runtime.current().execute(job, float(timeout))
