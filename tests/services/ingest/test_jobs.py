"""The job template writes what RQ writes, and RQ reads it back as the same job."""

from __future__ import annotations

import uuid
import zlib
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from services.ingest.leanredis import LeanRedis
from shared import jobtemplate
from shared.ids import uuid7
from shared.jobtemplate import JobTemplate, RqJobPacker, job_packer, serialise
from shared.queue import JOB_FUNCTION, RunEnqueuer, RunJob, decode_job_data
from tests.fixtures.servers import Infra
from tests.services.ingest.conftest import as_bytes


def _job(body: Any = None) -> RunJob:
    return {
        "run_id": str(uuid7()),
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "workflow_version": 4,
        "trigger": {
            "body": body if body is not None else {"amount": 150, "text": "grüße ✓"},
            "headers": {"content-type": "application/json"},
            "query": {"a": ["1", "2"]},
            "method": "POST",
            "received_at": "2026-11-26T12:00:00+00:00",
        },
        "idempotency_key": "evt-1",
        "traceparent": None,
        "retry_of": None,
    }


@pytest.fixture
def enqueuer() -> RunEnqueuer:
    return RunEnqueuer(aioredis.Redis(), f"q-{uuid.uuid4().hex[:6]}", job_timeout_s=300)


class TestTemplate:
    def test_is_used_with_the_installed_rq(self, enqueuer: RunEnqueuer) -> None:
        assert isinstance(job_packer(enqueuer), JobTemplate)

    async def test_rq_reads_back_the_job_it_would_have_written(
        self, infra: Infra, enqueuer: RunEnqueuer
    ) -> None:
        job = _job()
        packer = JobTemplate(enqueuer)
        lean = LeanRedis(infra.redis_url)
        await lean.transaction((packer.render(job),), packer.count)
        await lean.aclose()

        sync = redis.Redis.from_url(infra.redis_url)
        queue = Queue(enqueuer.queue_name, connection=sync, serializer=JSONSerializer)
        assert queue.job_ids == [job["run_id"]]
        fetched = Job.fetch(job["run_id"], connection=sync, serializer=JSONSerializer)
        assert fetched.func_name == JOB_FUNCTION
        assert list(fetched.args) == [job]
        assert fetched.timeout == 300
        assert fetched.get_status() == "queued"
        assert fetched.retries_left == 3
        assert fetched.description == f"run {job['run_id']} of workflow {job['workflow_id']}"
        sync.close()

    async def test_hash_matches_what_rq_writes(self, infra: Infra, enqueuer: RunEnqueuer) -> None:
        job = _job()
        sync = redis.Redis.from_url(infra.redis_url)
        lean = LeanRedis(infra.redis_url)
        await lean.transaction((RqJobPacker(enqueuer).render(job),), RqJobPacker(enqueuer).count)
        by_rq = sync.hgetall(f"rq:job:{job['run_id']}")
        sync.delete(f"rq:job:{job['run_id']}")
        await lean.transaction((JobTemplate(enqueuer).render(job),), JobTemplate(enqueuer).count)
        by_template = sync.hgetall(f"rq:job:{job['run_id']}")
        await lean.aclose()
        sync.close()

        assert by_template.keys() == by_rq.keys()
        for field in by_rq.keys() - {b"created_at", b"enqueued_at", b"data"}:
            assert by_template[field] == by_rq[field], field
        assert orjson.loads(zlib.decompress(as_bytes(by_template[b"data"]))) == orjson.loads(
            zlib.decompress(as_bytes(by_rq[b"data"]))
        )

    def test_the_template_names_the_queue_contracts_function(self) -> None:
        assert jobtemplate.JOB_FUNCTION == JOB_FUNCTION

    def test_payload_is_readable_by_the_shared_decoder(self) -> None:
        job = _job()
        assert decode_job_data(serialise(job)) == job

    def test_deeply_nested_payload_falls_back_to_the_json_module(self) -> None:
        body: list[Any] = []
        inner = body
        for _ in range(400):  # deeper than orjson serialises
            inner.append([])
            inner = inner[0]
        assert decode_job_data(serialise(_job(body))) is not None

    def test_large_payload_round_trips(self) -> None:
        job = _job({"items": [{"id": i, "name": f"item {i}"} for i in range(20_000)]})
        assert decode_job_data(serialise(job)) == job

    def test_layout_change_falls_back_to_rq(self, enqueuer: RunEnqueuer) -> None:
        class ChangedRq(RunEnqueuer):
            def commands(self, job: RunJob) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
                found = super().commands(job)
                # A future RQ that writes a field per job we do not know about.
                return [
                    *found,
                    (("HSET", f"rq:job:{job['run_id']}", "nonce", uuid.uuid4().hex), {}),
                ]

        changed = ChangedRq(aioredis.Redis(), "q", job_timeout_s=300)
        assert isinstance(job_packer(changed), RqJobPacker)


class TestPriority:
    @pytest.mark.parametrize("priority", ["high", "low"])
    async def test_a_priority_template_writes_to_that_priority_queue(
        self, infra: Infra, enqueuer: RunEnqueuer, priority: str
    ) -> None:
        job = _job()
        job["flow"] = {"priority": priority}  # type: ignore[typeddict-item]
        packer = job_packer(enqueuer, priority)  # type: ignore[arg-type]
        assert isinstance(packer, JobTemplate)
        lean = LeanRedis(infra.redis_url)
        await lean.transaction((packer.render(job),), packer.count)
        await lean.aclose()
        connection = redis.Redis.from_url(infra.redis_url)
        try:
            name = f"{enqueuer.queue_name}:{priority}"
            assert connection.lrange(f"rq:queue:{name}", 0, -1) == [job["run_id"].encode()]
            assert connection.llen(f"rq:queue:{enqueuer.queue_name}") == 0
            fetched = Queue(name, connection=connection, serializer=JSONSerializer).dequeue_any(
                [Queue(name, connection=connection, serializer=JSONSerializer)],
                None,
                connection=connection,
                serializer=JSONSerializer,
            )
            assert fetched is not None
            assert fetched[0].args[0] == job
        finally:
            connection.close()
