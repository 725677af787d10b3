"""What the consumer writes (services/worker/rqlayout.py) is RQ's layout: RQ's own classes and
`rq info` read it, and a stock `rq worker` runs an AutomateOS job to the same recorded result."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
import rq
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.rqlayout import RqLayout, Settlement
from shared.queue import JOB_FUNCTION, RunEnqueuer
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ROOT, ServiceProcess
from tests.services.worker.harness import Queue as RunQueue
from tests.services.worker.harness import (
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    wait_run,
)


@pytest.fixture
def connection(infra: Infra) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(infra.redis_url)
    yield client
    client.close()


@pytest.fixture
def queue(connection: redis.Redis) -> Queue:
    return Queue(f"layout-{secrets.token_hex(4)}", connection=connection, serializer=JSONSerializer)


@pytest.fixture
async def layout(infra: Infra) -> AsyncIterator[RqLayout]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield RqLayout(
        client, f"layout-test-{secrets.token_hex(4)}", execution_ttl_s=30, worker_ttl_s=30
    )
    await client.aclose()


def _enqueue(queue: Queue, **options: object) -> Job:
    return queue.enqueue(JOB_FUNCTION, {"run_id": "x"}, job_timeout=60, **options)  # type: ignore[arg-type]


def _fetch(job_id: str, connection: redis.Redis) -> Job:
    return Job.fetch(job_id, connection=connection, serializer=JSONSerializer)


def test_the_pinned_rq_release() -> None:
    # pyproject pins rq>=3,<4; the scripts write RQ 3's layout.
    assert rq.__version__.startswith("3.")


class TestRqReadsWhatTheConsumerWrites:
    async def test_a_taken_job_is_started_in_every_registry_rq_reads(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        await layout.register([queue.name])
        jobs = [_enqueue(queue) for _ in range(3)]
        taken = await layout.take([queue.name], 2)

        assert [d.job_id for d in taken] == [jobs[0].id, jobs[1].id]
        assert taken[0].timeout_s == 60
        assert queue.get_job_ids() == [jobs[2].id]
        started = StartedJobRegistry(queue.name, connection=connection)
        assert sorted(started.get_job_ids()) == sorted([jobs[0].id, jobs[1].id])
        fetched = _fetch(jobs[0].id, connection)
        assert fetched.get_status() == "started"
        assert fetched.worker_name == layout.worker_name
        assert fetched.started_at is not None
        assert connection.ttl(fetched.key) == -1
        [worker] = [w for w in Worker.all(queue=queue) if w.name == layout.worker_name]
        assert (worker.pid, worker.get_state()) == (os.getpid(), "busy")
        assert {e.job_id for e in worker.get_current_executions(refresh=True)} == {
            jobs[0].id,
            jobs[1].id,
        }

    async def test_success_failure_and_retry_land_where_rq_looks(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        await layout.register([queue.name])
        kept = _enqueue(queue, result_ttl=60)
        dropped = _enqueue(queue, result_ttl=0)
        retried = _enqueue(queue, retry=rq.Retry(max=1))
        failed = _enqueue(queue)
        taken = await layout.take([queue.name], 4)
        outcomes = await layout.settle(
            [
                Settlement(taken[0], None, 0.1),
                Settlement(taken[1], None, 0.1),
                Settlement(taken[2], "boom", 0.1),
                Settlement(taken[3], "boom", 0.1),
            ]
        )

        assert outcomes == ["finished", "deleted", "retried", "failed"]
        assert _fetch(kept.id, connection).get_status() == "finished"
        assert FinishedJobRegistry(queue.name, connection=connection).get_job_ids() == [kept.id]
        assert not connection.exists(dropped.key)
        again = _fetch(retried.id, connection)
        assert (again.get_status(), again.retries_left) == ("queued", 0)
        assert queue.get_job_ids() == [retried.id]
        assert FailedJobRegistry(queue.name, connection=connection).get_job_ids() == [failed.id]
        assert _fetch(failed.id, connection).get_status() == "failed"
        assert StartedJobRegistry(queue.name, connection=connection).get_job_ids() == []
        [worker] = [w for w in Worker.all(queue=queue) if w.name == layout.worker_name]
        assert (worker.successful_job_count, worker.failed_job_count) == (2, 2)

    async def test_a_job_cut_short_goes_back_to_the_front_without_spending_a_retry(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        first, second = _enqueue(queue, retry=rq.Retry(max=2)), _enqueue(queue)
        [taken] = await layout.take([queue.name], 1)
        assert await layout.release([taken]) == ["released"]
        assert queue.get_job_ids() == [first.id, second.id]
        assert _fetch(first.id, connection).retries_left == 2

    async def test_an_abandoned_job_is_retried_and_its_late_settlement_changes_nothing(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        job = _enqueue(queue, retry=rq.Retry(max=1))
        [taken] = await layout.take([queue.name], 1)
        started = StartedJobRegistry(queue.name, connection=connection)
        # Its worker stopped renewing: the entry's expiry passes.
        connection.zadd(started.key, {f"{job.id}:{taken.execution_id}": 1})

        assert await layout.recover([queue.name]) == [(job.id, "retried")]
        assert queue.get_job_ids() == [job.id]
        assert await layout.settle([Settlement(taken, None, 1.0)]) == ["stale"]
        assert _fetch(job.id, connection).get_status() == "queued"

    async def test_renewal_extends_the_started_entries(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        await layout.register([queue.name])
        job = _enqueue(queue)
        [taken] = await layout.take([queue.name], 1)
        started = StartedJobRegistry(queue.name, connection=connection)
        member = f"{job.id}:{taken.execution_id}"
        connection.zadd(started.key, {member: 5})
        await layout.renew([taken])
        assert float(connection.zscore(started.key, member) or 0) > 1_000_000
        connection.delete(job.key)
        await layout.renew([taken])
        # A heartbeat never recreates a hash that ended meanwhile.
        assert not connection.exists(job.key)

    async def test_due_scheduled_jobs_are_moved_onto_the_queue(
        self, layout: RqLayout, queue: Queue, connection: redis.Redis
    ) -> None:
        from datetime import UTC, datetime, timedelta

        due = queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), JOB_FUNCTION, {})
        later = queue.enqueue_at(datetime.now(UTC) + timedelta(hours=1), JOB_FUNCTION, {})
        await layout.recover([queue.name])
        assert queue.get_job_ids() == [due.id]
        assert _fetch(due.id, connection).get_status() == "queued"
        assert _fetch(later.id, connection).get_status() == "scheduled"

    async def test_rq_info_counts_queue_workers_and_started_jobs(
        self, layout: RqLayout, queue: Queue, infra: Infra
    ) -> None:
        await layout.register([queue.name])
        for _ in range(3):
            _enqueue(queue)
        await layout.take([queue.name], 2)
        info = subprocess.run(
            [sys.executable, "-m", "rq.cli", "info", "--raw", "--url", infra.redis_url, queue.name],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert f"queue {queue.name} 1, 2 executing, 0 finished, 0 failed" in info, info
        worker_line = (
            f"worker {layout.worker_name} ({socket.gethostname()} None {os.getpid()}) busy"
        )
        assert f"{worker_line} {queue.name}" in info, info


async def test_a_stock_rq_worker_runs_a_job_to_the_same_recorded_result(
    db: AsyncEngine,
    infra: Infra,
    shared_env: dict[str, str],
    queue_of_shared: RunQueue,
    tmp_path: Path,
) -> None:
    nodes = [
        {"id": "shape", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}}
    ]
    workflow = await create_workflow(db, await create_user(db), nodes)
    ours = await queue_of_shared.put(run_job(workflow, {"n": 7}))

    stock_queue = f"stock-{secrets.token_hex(4)}"
    client = aioredis.Redis.from_url(infra.redis_url)
    stock_job = run_job(workflow, {"n": 7})
    await RunEnqueuer(client, stock_queue, 60).enqueue(stock_job)
    await client.aclose()
    # The command line docs/worker.md gives, in burst mode so it stops when the queue is dry.
    command = [sys.executable, "-m", "rq.cli", "worker", "--burst"]
    command += ["--worker-class", "rq.worker.SimpleWorker"]
    command += ["--serializer", "rq.serializers.JSONSerializer"]
    command += ["--url", infra.redis_url, stock_queue]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **shared_env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr

    theirs = stock_job["run_id"]
    runs = [await wait_run(db, run_id) for run_id in (ours, theirs)]
    assert [(r["status"], r["attempt"], r["error"]) for r in runs] == [("succeeded", 1, None)] * 2
    steps = [await fetch_steps(db, run_id) for run_id in (ours, theirs)]
    assert [[(s["node_id"], s["status"], s["output"]) for s in run] for run in steps] == [
        [("shape", "succeeded", {"n": 7})]
    ] * 2
    # RQ recorded the job as finished (its result is the run's status).
    connection = redis.Redis.from_url(infra.redis_url)
    try:
        assert not connection.exists(f"rq:job:{theirs}")  # result_ttl 0: deleted on success
    finally:
        connection.close()


@pytest.fixture
async def queue_of_shared(
    infra: Infra, shared_env: dict[str, str], shared_worker: ServiceProcess
) -> AsyncIterator[RunQueue]:
    jobs = RunQueue(infra.redis_url, shared_env["AUTOMATEOS_QUEUE_NAME"])
    yield jobs
    await jobs.close()
