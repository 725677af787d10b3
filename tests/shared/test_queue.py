"""The queue contract against a real Redis and RQ's own reader."""

from __future__ import annotations

import uuid

import pytest
import redis
import redis.asyncio as aioredis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from shared.ids import uuid7
from shared.queue import JOB_FUNCTION, RunEnqueuer, RunJob, fetch_queued_job, queue_key
from tests.fixtures.servers import Infra


def _job(run_id: str) -> RunJob:
    return {
        "run_id": run_id,
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "workflow_version": 3,
        "trigger": {
            "body": {"amount": 150, "text": "grüße"},
            "headers": {"content-type": "application/json"},
            "query": {"a": "1"},
            "method": "POST",
            "received_at": "2026-11-26T12:00:00+00:00",
        },
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }


class TestRunEnqueuer:
    async def test_rq_reads_the_job_it_wrote(self, infra: Infra) -> None:
        client = aioredis.Redis.from_url(infra.redis_url)
        queue_name = f"q-{uuid.uuid4().hex[:8]}"
        run_id = str(uuid7())
        await RunEnqueuer(client, queue_name, job_timeout_s=120).enqueue(_job(run_id))
        await client.aclose()

        sync = redis.Redis.from_url(infra.redis_url)
        queue = Queue(queue_name, connection=sync, serializer=JSONSerializer)
        assert queue.job_ids == [run_id]
        job = Job.fetch(run_id, connection=sync, serializer=JSONSerializer)
        assert job.func_name == JOB_FUNCTION
        assert job.args[0]["trigger"]["body"] == {"amount": 150, "text": "grüße"}
        assert job.timeout == 120
        assert job.get_status() == "queued"

    async def test_queued_job_can_be_read_back(self, infra: Infra) -> None:
        client = aioredis.Redis.from_url(infra.redis_url)
        run_id = str(uuid7())
        await RunEnqueuer(client, "q-read", job_timeout_s=60).enqueue(_job(run_id))
        found = await fetch_queued_job(client, run_id)
        assert found is not None
        status, job = found
        assert status == "queued"
        assert job["run_id"] == run_id
        assert await fetch_queued_job(client, str(uuid7())) is None
        await client.aclose()

    async def test_unreachable_redis_raises_instead_of_pretending(self) -> None:
        client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
        with pytest.raises(redis.exceptions.ConnectionError):
            await RunEnqueuer(client, "q", job_timeout_s=60).enqueue(_job(str(uuid7())))
        await client.aclose()

    def test_queue_key_is_rq_list(self) -> None:
        assert queue_key("automateos") == "rq:queue:automateos"
