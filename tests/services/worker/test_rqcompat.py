"""What `services/worker/rqcompat.py` relies on in RQ, checked against the installed RQ and a
real Redis: an RQ upgrade that changes it fails here first."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import redis
import rq
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from services.worker import rqcompat
from tests.fixtures.servers import Infra


@pytest.fixture
def connection(infra: Infra) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(infra.redis_url)
    yield client
    client.close()


@pytest.fixture
def queue(connection: redis.Redis) -> Queue:
    return Queue(f"compat-{secrets.token_hex(4)}", connection=connection, serializer=JSONSerializer)


@pytest.fixture
def worker(queue: Queue, connection: redis.Redis) -> SimpleWorker:
    worker = SimpleWorker([queue], connection=connection, serializer=JSONSerializer)
    worker.register_birth()
    return worker


def _job(queue: Queue) -> Job:
    return queue.enqueue("services.worker.jobs.execute_run", {"run_id": "x"}, job_timeout=60)


def test_the_pinned_rq_release() -> None:
    # pyproject pins rq>=3,<4; these tests describe 3.x.
    assert rq.__version__.startswith("3.")


class TestDequeue:
    def test_returns_a_queued_job(self, worker: SimpleWorker, queue: Queue) -> None:
        job = _job(queue)
        result = rqcompat.dequeue(worker, 1, lambda: False)
        assert result is not None
        assert result[0].id == job.id

    def test_returns_none_after_a_timeout_once_a_stop_was_requested(
        self, worker: SimpleWorker
    ) -> None:
        stops = iter([False, True])
        started = time.monotonic()
        assert rqcompat.dequeue(worker, 1, lambda: next(stops)) is None
        assert time.monotonic() - started < 5

    def test_a_job_popped_as_a_stop_came_goes_back_to_the_front(
        self, worker: SimpleWorker, queue: Queue, connection: redis.Redis
    ) -> None:
        first, second = _job(queue), _job(queue)
        stops = iter([False, True])
        assert rqcompat.dequeue(worker, 1, lambda: next(stops)) is None
        assert queue.get_job_ids() == [first.id, second.id]
        assert connection.llen(queue.intermediate_queue_key) == 0

    def test_burst_mode_returns_none_on_an_empty_queue(self, worker: SimpleWorker) -> None:
        assert rqcompat.dequeue(worker, None, lambda: False) is None


class TestPrepare:
    def test_writes_what_rqs_two_preparation_steps_write(
        self, worker: SimpleWorker, queue: Queue, connection: redis.Redis
    ) -> None:
        job = _job(queue)
        result = rqcompat.dequeue(worker, 1, lambda: False)
        assert result is not None
        execution = rqcompat.prepare(worker, result[0], queue)
        fetched = Job.fetch(job.id, connection=connection, serializer=JSONSerializer)
        assert fetched.get_status() == "started"
        assert fetched.worker_name == worker.name
        assert job.id in StartedJobRegistry(queue.name, connection=connection).get_job_ids()
        assert connection.exists(execution.key)
        assert connection.ttl(job.key) == -1  # persisted while it runs
        assert connection.llen(queue.intermediate_queue_key) == 0
        assert [e.id for e in worker.get_current_executions(refresh=True)] == [execution.id]


class TestRenew:
    def test_one_pipeline_extends_every_job_in_flight(
        self, worker: SimpleWorker, queue: Queue, connection: redis.Redis
    ) -> None:
        jobs = [_job(queue) for _ in range(3)]
        flights = []
        for job in jobs:
            execution = worker.prepare_execution(job)
            worker.prepare_job_execution(job)
            flights.append((job, execution))
        registry = StartedJobRegistry(queue.name, connection=connection)
        before = {
            member: score
            for member, score in connection.zrange(registry.key, 0, -1, withscores=True)
        }
        assert len(before) == 3
        rqcompat.renew(worker, flights, ttl=300)
        after = {
            member: score
            for member, score in connection.zrange(registry.key, 0, -1, withscores=True)
        }
        assert set(after) == set(before)
        assert all(after[m] > before[m] for m in before)
        for job in jobs:
            assert connection.hget(job.key, "last_heartbeat") is not None

    def test_renewal_does_not_recreate_a_finished_job(
        self, worker: SimpleWorker, queue: Queue, connection: redis.Redis
    ) -> None:
        job = _job(queue)
        execution = worker.prepare_execution(job)
        connection.delete(job.key)
        rqcompat.renew(worker, [(job, execution)], ttl=300)
        assert not connection.exists(job.key)
