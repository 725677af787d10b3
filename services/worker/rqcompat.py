"""Where the worker goes past RQ's public API: one module, pinned by tests to the RQ release.

- `dequeue`: RQ's `dequeue_job_and_maintain_ttl` loops until a job arrives, so a stop request
  could only interrupt it by raising from the signal handler (which can strand a job popped
  at that moment). Ours returns None after a dequeue timeout once a stop was requested.
- `prepare`: RQ's `prepare_execution` and `prepare_job_execution` are two round trips per
  job; the same writes go in one.
- `renew`: RQ renews one job per pipeline (`maintain_heartbeats`); with 32 runs in flight one
  pipeline renews them all.

tests/services/worker/test_rqcompat.py runs both against a real Redis and a real RQ queue, so
an RQ upgrade that changes what they rely on fails there first (pyproject pins `rq<4`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import redis
from rq.exceptions import DequeueTimeout
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

if TYPE_CHECKING:
    from rq.worker import BaseWorker as Worker

FINISHED = JobStatus.FINISHED


def dequeue(
    worker: Worker, timeout: int | None, stop_requested: Callable[[], bool]
) -> tuple[Job, Queue] | None:
    """One job from the worker's queues, or None when a stop was requested or burst is dry.

    Heartbeats and RQ's maintenance (re-queueing abandoned jobs) run between blocking waits,
    as in RQ's own loop; a lost Redis connection is retried with a capped backoff.
    """
    wait = 1.0
    while True:
        if stop_requested():
            return None
        try:
            worker.heartbeat()
            if worker.should_run_maintenance_tasks:
                worker.run_maintenance_tasks()  # type: ignore[no-untyped-call]
            result = worker.queue_class.dequeue_any(
                worker._ordered_queues,
                timeout,
                connection=worker.connection,
                job_class=worker.job_class,
                serializer=worker.serializer,
                death_penalty_class=worker.death_penalty_class,
            )
        except DequeueTimeout:
            continue
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            worker.log.error("could not reach Redis (%s); retrying in %.0fs", exc, wait)
            time.sleep(wait)
            wait = min(wait * 2, worker.max_connection_wait_time)
            continue
        if result is None:
            return None
        job, queue = result
        if stop_requested():
            # Popped while a stop request came in: back to the front, for another worker.
            _give_back(worker, job, queue)
            return None
        job.redis_server_version = worker.get_redis_server_version()  # type: ignore[no-untyped-call]
        return result


def prepare(worker: Worker, job: Job, queue: Queue) -> Execution:
    """Record the job as started by `worker` (execution, started registry, job status).

    The writes of RQ's `prepare_execution` and `prepare_job_execution`, in one pipeline.
    """
    ttl = worker.get_heartbeat_ttl(job)
    with worker.connection.pipeline() as pipeline:
        execution = Execution.create(job, ttl, pipeline=pipeline, worker_name=worker.name)
        worker.executions[execution.id] = execution
        worker.set_state(WorkerStatus.BUSY, pipeline=pipeline)
        worker.heartbeat(ttl, pipeline=pipeline)
        job.heartbeat(now(), ttl, pipeline=pipeline)
        job.prepare_for_execution(worker.name, pipeline=pipeline)
        pipeline.persist(job.key)
        if len(worker.queues) == 1:
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        pipeline.execute()
    return execution


def _give_back(worker: Worker, job: Job, queue: Queue) -> None:
    # A single-queue dequeue moves the id into RQ's intermediate list (LMOVE): undo both.
    with worker.connection.pipeline() as pipeline:
        pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
        queue.push_job_id(job.id, pipeline=pipeline, at_front=True)
        pipeline.execute()


def renew(worker: Worker, flights: Sequence[tuple[Job, Execution]], ttl: int) -> None:
    """Extend the worker's and every running job's registry entries in one round trip.

    RQ's job heartbeat is an HSET, which recreates a job hash that finished (and expired)
    meanwhile; such a hash is deleted again at once, as RQ's own `maintain_heartbeats` does.
    """
    stamp = now()
    with worker.connection.pipeline() as pipeline:
        worker.heartbeat(int(worker.job_monitoring_interval) + 60, pipeline=pipeline)
        positions = []
        for job, execution in flights:
            execution.heartbeat(job.started_job_registry, ttl, pipeline=pipeline)
            positions.append(len(pipeline))
            job.heartbeat(stamp, ttl, pipeline=pipeline)
        results = pipeline.execute()
        recreated = [
            job.key
            for (job, _execution), index in zip(flights, positions, strict=True)
            if results[index] == 1
        ]
        if recreated:
            pipeline.delete(*recreated)
            pipeline.execute()
