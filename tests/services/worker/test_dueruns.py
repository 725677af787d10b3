"""The due-run poller: a parked run's resume time in PostgreSQL is all it takes to resume it."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.dueruns import DueRunPoller
from shared.queue import RunEnqueuer, decode_job_data
from shared.waits import wake_key
from tests.fixtures.servers import Infra
from tests.services.worker.harness import create_user, create_workflow, fetch_run


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(infra.redis_url)
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
def poller(db: AsyncEngine, client: aioredis.Redis) -> DueRunPoller:
    enqueuer = RunEnqueuer(client, f"due-{secrets.token_hex(4)}", 60)
    return DueRunPoller(db, client, enqueuer, interval_s=1, batch=500, redeliver_after_s=1.0)


async def _parked(db: AsyncEngine, resume_in_s: float, queue: str) -> str:
    workflow = await create_workflow(
        db, await create_user(db), [{"id": "wait", "type": "delay", "params": {"seconds": 60}}]
    )
    run_id = uuid.uuid4()
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status,"
                " trigger, attempt, accepted_at, started_at, resume_at, waiting_step, queue)"
                " VALUES (:id, :wf, :owner, :version, 'waiting', CAST(:trigger AS jsonb), 1,"
                " now(), now(), :resume_at, 0, :queue)"
            ),
            {
                "id": run_id,
                "wf": workflow.id,
                "owner": workflow.owner_id,
                "version": workflow.version,
                "trigger": '{"body": {"n": 1}, "headers": {}, "query": {}, "method": "POST"}',
                "resume_at": datetime.now(UTC) + timedelta(seconds=resume_in_s),
                # Parked on this poller's queue: the stacks other tests run poll theirs only.
                "queue": queue,
            },
        )
    return str(run_id)


async def _queued(client: aioredis.Redis, poller: DueRunPoller, *runs: str) -> list[str]:
    # The database is shared: other tests' due runs may be enqueued here too.
    ids = await client.lrange(f"rq:queue:{poller.enqueuer.queue_name}", 0, -1)
    return [i.decode() for i in ids if i.decode().split("-p")[0] in runs]


async def test_a_due_run_is_enqueued_once_and_again_only_if_its_continuation_is_lost(
    db: AsyncEngine, client: aioredis.Redis, poller: DueRunPoller
) -> None:
    queue = poller.enqueuer.queue_name
    due, later = await _parked(db, -1, queue), await _parked(db, 3600, queue)
    await poller.poll_once()
    await poller.poll_once()
    assert await _queued(client, poller, due, later) == [f"{due}-p0"]
    data = await client.hget(f"rq:job:{due}-p0", "data")
    job = decode_job_data(data)
    assert job is not None
    assert (job["run_id"], job["resume_step"]) == (due, 0)
    assert job["trigger"]["body"] == {"n": 1}

    # Lost on its way (never resumed): the row comes due again after the redelivery window.
    await client.delete(f"rq:queue:{poller.enqueuer.queue_name}")
    await asyncio.sleep(1.2)
    await poller.poll_once()
    assert await _queued(client, poller, due, later) == [f"{due}-p0"]
    run = await fetch_run(db, due)
    assert run is not None
    assert run["status"] == "waiting"


async def test_a_woken_run_is_enqueued_before_its_time(
    db: AsyncEngine, client: aioredis.Redis, poller: DueRunPoller
) -> None:
    run_id = await _parked(db, 3600, poller.enqueuer.queue_name)
    gone = str(uuid.uuid4())  # woken, but no longer waiting: dropped
    await client.zadd(wake_key(poller.enqueuer.queue_name), {run_id: 1, gone: 1})
    await poller.poll_once()
    assert await _queued(client, poller, run_id, gone) == [f"{run_id}-p0"]
    assert await client.zcard(wake_key(poller.enqueuer.queue_name)) == 0
