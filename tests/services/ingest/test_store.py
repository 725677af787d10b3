"""A dedupe key never names a run whose job Redis does not have (store.py, flow_debounce.FOLD).

The claim and the job are one script, so a failure anywhere inside it leaves the key free for
the sender's retry. The failure is made real here: the queue's key already holds a string, so
RQ's RPUSH of the job gets Redis's WRONGTYPE error half way through the job's commands.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis

from services.ingest.hooks.debounce import Debouncer
from services.ingest.hooks.store import QueueUnavailable, RunStore
from services.ingest.leanredis import LeanRedis
from shared.flow import DebounceSpec
from shared.ids import uuid7
from shared.jobtemplate import RqJobPacker
from shared.queue import RunEnqueuer, RunJob, job_key, queue_key
from tests.fixtures.servers import Infra

WINDOW_S = 600


def _job() -> RunJob:
    return {
        "run_id": str(uuid7()),
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "workflow_version": 1,
        "trigger": {
            "body": {"n": 1},
            "headers": {},
            "query": {},
            "method": "POST",
            "received_at": "2026-12-07T00:00:00+00:00",
        },
        "idempotency_key": "evt-1",
        "traceparent": None,
        "retry_of": None,
    }


@pytest.fixture
def sync(infra: Infra) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(infra.redis_url)
    yield connection
    connection.close()


@pytest.fixture
async def lean(infra: Infra) -> AsyncIterator[LeanRedis]:
    connection = LeanRedis(infra.redis_url)
    yield connection
    await connection.aclose()


@pytest.fixture
def enqueuer() -> RunEnqueuer:
    # The async client is never used: RunStore sends on its lean connections.
    return RunEnqueuer(None, f"store-{uuid.uuid4().hex[:8]}", job_timeout_s=300)  # type: ignore[arg-type]


def _queued(sync: redis.Redis, enqueuer: RunEnqueuer) -> list[Any]:
    return list(sync.lrange(queue_key(enqueuer.queue_name), 0, -1))


class TestClaimAndStore:
    async def test_the_first_delivery_stores_its_job_and_holds_the_key_for_the_window(
        self, lean: LeanRedis, sync: redis.Redis, enqueuer: RunEnqueuer
    ) -> None:
        store, job, key = RunStore(lean, enqueuer, WINDOW_S), _job(), f"dedupe:{uuid.uuid4()}"
        assert await store.store(job, key) == (job["run_id"], False)
        assert _queued(sync, enqueuer) == [job["run_id"].encode()]
        assert sync.exists(job_key(job["run_id"])) == 1
        assert sync.get(key) == job["run_id"].encode()
        assert WINDOW_S - 5 < sync.ttl(key) <= WINDOW_S

    async def test_a_repeat_is_answered_with_the_first_run_and_stores_nothing(
        self, lean: LeanRedis, sync: redis.Redis, enqueuer: RunEnqueuer
    ) -> None:
        store, first, key = RunStore(lean, enqueuer, WINDOW_S), _job(), f"dedupe:{uuid.uuid4()}"
        await store.store(first, key)
        repeat = _job()
        assert await store.store(repeat, key) == (first["run_id"], True)
        assert _queued(sync, enqueuer) == [first["run_id"].encode()]
        assert sync.exists(job_key(repeat["run_id"])) == 0

    async def test_the_same_run_sent_again_is_not_a_duplicate(
        self, lean: LeanRedis, enqueuer: RunEnqueuer
    ) -> None:
        # What leanredis does when a connection broke after Redis ran the script.
        store, job, key = RunStore(lean, enqueuer, WINDOW_S), _job(), f"dedupe:{uuid.uuid4()}"
        await store.store(job, key)
        assert await store.store(job, key) == (job["run_id"], False)

    async def test_a_job_redis_refuses_leaves_the_key_free_for_the_retry(
        self, lean: LeanRedis, sync: redis.Redis, enqueuer: RunEnqueuer
    ) -> None:
        store, key = RunStore(lean, enqueuer, WINDOW_S), f"dedupe:{uuid.uuid4()}"
        sync.set(queue_key(enqueuer.queue_name), "not a list")
        refused = _job()
        with pytest.raises(QueueUnavailable, match="WRONGTYPE"):
            await store.store(refused, key)
        assert sync.exists(key) == 0

        sync.delete(queue_key(enqueuer.queue_name))
        retry = _job()
        assert await store.store(retry, key) == (retry["run_id"], False)
        assert _queued(sync, enqueuer) == [retry["run_id"].encode()]

    async def test_the_rq_built_fallback_stores_the_same_way(
        self, lean: LeanRedis, sync: redis.Redis, enqueuer: RunEnqueuer
    ) -> None:
        enqueuer._packers[enqueuer.queue_name] = RqJobPacker(enqueuer)
        store, job, key = RunStore(lean, enqueuer, WINDOW_S), _job(), f"dedupe:{uuid.uuid4()}"
        assert await store.store(job, key) == (job["run_id"], False)
        assert _queued(sync, enqueuer) == [job["run_id"].encode()]
        assert sync.get(key) == job["run_id"].encode()


class TestDebounceFold:
    async def test_a_job_redis_refuses_creates_no_run_to_join(
        self, lean: LeanRedis, sync: redis.Redis, enqueuer: RunEnqueuer
    ) -> None:
        debouncer = Debouncer(lean, enqueuer)
        spec: DebounceSpec = {"period_s": 5.0}
        job = _job()
        # Scheduled jobs go to RQ's scheduled registry (a sorted set): make its ZADD fail.
        scheduled = f"rq:scheduled:{enqueuer.queue_name}"
        sync.set(scheduled, "not a sorted set")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await debouncer.fold(job, spec)
        assert sync.keys(f"automateos:flow:deb:{job['workflow_id']}:*") == []

        sync.delete(scheduled)
        retry = _job() | {"workflow_id": job["workflow_id"]}
        assert await debouncer.fold(retry, spec) == (retry["run_id"], False)
        assert sync.zscore(scheduled, retry["run_id"]) is not None
        assert sync.exists(job_key(retry["run_id"])) == 1
        later = _job() | {"workflow_id": job["workflow_id"]}
        assert await debouncer.fold(later, spec) == (retry["run_id"], True)
        assert sync.exists(job_key(later["run_id"])) == 0
        assert sync.zcard(scheduled) == 1
        assert time.time() < float(sync.zscore(scheduled, retry["run_id"]) or 0) + 10
