"""Schedule triggers: one run per tick whatever the number of scheduler replicas."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.worker.scheduler import Scheduler, tick_job
from shared.queue import RunEnqueuer, decode_job_data, job_key, queue_key
from tests.fixtures.servers import Infra
from tests.services.worker.harness import create_user, create_workflow

LOG = [{"id": "note", "type": "log", "params": {"message": "tick"}}]


class Replica:
    """One scheduler replica: its own pool and Redis client, as in its own pod."""

    def __init__(self, infra: Infra, queue: str, grace_s: float = 60) -> None:
        self.db = create_async_engine(infra.database_url, pool_size=2)
        self.redis = aioredis.Redis.from_url(infra.redis_url)
        self.scheduler = Scheduler(
            self.db,
            self.redis,
            RunEnqueuer(self.redis, queue, 60),
            poll_s=0.2,
            misfire_grace_s=grace_s,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.scheduler.run_forever())

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.redis.aclose()
        await self.db.dispose()


@pytest.fixture
def queue_name() -> str:
    return f"schedule-test-{secrets.token_hex(4)}"


@pytest.fixture
async def replicas(infra: Infra, queue_name: str) -> AsyncIterator[list[Replica]]:
    made = [Replica(infra, queue_name), Replica(infra, queue_name)]
    yield made
    for replica in made:
        await replica.close()


async def scheduled_workflow(
    db: AsyncEngine, trigger: dict[str, Any], next_run_at: datetime
) -> uuid.UUID:
    workflow = await create_workflow(db, await create_user(db), LOG)
    async with db.begin() as conn:
        await conn.execute(
            text(
                "UPDATE workflows SET trigger = CAST(:t AS jsonb), next_run_at = :n WHERE id = :id"
            ),
            {"t": orjson.dumps(trigger).decode(), "n": next_run_at, "id": workflow.id},
        )
    return workflow.id


async def queued_jobs(infra: Infra, queue: str) -> list[dict[str, Any]]:
    """Every job on the queue, in order, decoded (the same run twice shows up twice)."""
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        ids = [raw.decode() for raw in await client.lrange(queue_key(queue), 0, -1)]
        jobs = []
        for run_id in ids:
            data = await client.hget(job_key(run_id), "data")
            job = decode_job_data(data) if data else None
            assert job is not None, f"job {run_id} has no payload"
            jobs.append(dict(job))
        return jobs
    finally:
        await client.aclose()


async def next_run_at(db: AsyncEngine, workflow_id: uuid.UUID) -> datetime | None:
    async with db.connect() as conn:
        value: datetime | None = await conn.scalar(
            text("SELECT next_run_at FROM workflows WHERE id = :id"), {"id": workflow_id}
        )
        return value


class TestEverySecond:
    async def test_two_replicas_queue_one_run_per_tick_for_ten_seconds(
        self, db: AsyncEngine, infra: Infra, replicas: list[Replica], queue_name: str
    ) -> None:
        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        workflow_id = await scheduled_workflow(db, {"type": "schedule", "every": "1s"}, first)
        for replica in replicas:
            replica.start()
        await asyncio.sleep(4.5)
        # The active replica dies (its lease is not released); the standby takes over once
        # the lease lapses and runs the ticks it missed meanwhile.
        holders = [await replica.redis.get(replica.scheduler.lease.key) for replica in replicas]
        active = next(
            replica
            for replica, holder in zip(replicas, holders, strict=True)
            if holder == replica.scheduler.lease.holder.encode()
        )
        assert active.task is not None
        active.task.cancel()
        await asyncio.sleep(5.5)
        # Stop both before counting, so no tick lands between the two reads.
        for replica in replicas:
            await replica.close()
        # Other tests' due workflows share the database: only this one's ticks count.
        jobs = [
            job
            for job in await queued_jobs(infra, queue_name)
            if job["workflow_id"] == str(workflow_id)
        ]
        ids = Counter(job["run_id"] for job in jobs)
        ticks = Counter(job["trigger"]["scheduled_at"] for job in jobs)
        assert 9 <= len(jobs) <= 11, f"{len(jobs)} runs in 10 s"
        assert max(ids.values()) == 1, "a run was queued twice"
        assert max(ticks.values()) == 1, "a tick was queued twice"
        # One a second, on whole seconds, none skipped.
        times = sorted(datetime.fromisoformat(tick) for tick in ticks)
        assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))

    async def test_only_the_lease_holder_works(self, replicas: list[Replica]) -> None:
        held = [await replica.scheduler.lease.hold() for replica in replicas]
        assert sorted(held) == [False, True]
        holder = replicas[held.index(True)]
        await holder.scheduler.lease.release()
        standby = replicas[held.index(False)]
        assert await standby.scheduler.lease.hold()


class TestCrashMidTick:
    async def test_a_tick_enqueued_by_a_replica_that_died_is_not_queued_again(
        self, db: AsyncEngine, infra: Infra, replicas: list[Replica], queue_name: str
    ) -> None:
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        workflow_id = await scheduled_workflow(db, {"type": "schedule", "every": "1h"}, due)
        dying, survivor = (replica.scheduler for replica in replicas)
        # The dying replica got as far as the enqueue, then died before moving the row on.
        async with db.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT id, owner_id, version FROM workflows WHERE id = :id"),
                    {"id": workflow_id},
                )
            ).one()
        assert await dying._enqueue(tick_job(row, due, datetime.now(UTC)), workflow_id, due)
        # The database is shared with other tests: count only this workflow's ticks.
        await survivor.poll_once()
        jobs = await queued_jobs(infra, queue_name)
        mine = [job for job in jobs if job["workflow_id"] == str(workflow_id)]
        assert [job["trigger"]["scheduled_at"] for job in mine] == [due.isoformat()]
        moved = await next_run_at(db, workflow_id)
        assert moved is not None
        assert moved > datetime.now(UTC)

    async def test_a_tick_claimed_by_no_one_is_run_by_the_next_holder(
        self, db: AsyncEngine, infra: Infra, replicas: list[Replica], queue_name: str
    ) -> None:
        # The holder died before enqueueing: its lock went with its connection.
        due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
        await scheduled_workflow(db, {"type": "schedule", "every": "1h"}, due)
        assert await replicas[1].scheduler.poll_once() >= 1
        jobs = await queued_jobs(infra, queue_name)
        assert due.isoformat() in [job["trigger"]["scheduled_at"] for job in jobs]


class TestMissedTicks:
    async def test_a_tick_older_than_the_grace_is_skipped_not_replayed(
        self, db: AsyncEngine, infra: Infra, queue_name: str
    ) -> None:
        replica = Replica(infra, queue_name, grace_s=30)
        try:
            due = datetime.now(UTC) - timedelta(minutes=10)
            workflow_id = await scheduled_workflow(
                db, {"type": "schedule", "cron": "* * * * *", "timezone": "Europe/Berlin"}, due
            )
            await replica.scheduler.poll_once()
            jobs = await queued_jobs(infra, queue_name)
            assert [job for job in jobs if job["workflow_id"] == str(workflow_id)] == []
            moved = await next_run_at(db, workflow_id)
            assert moved is not None
            assert moved > datetime.now(UTC)
            assert moved.second == 0
        finally:
            await replica.close()

    async def test_an_inactive_workflow_does_not_tick(
        self, db: AsyncEngine, infra: Infra, queue_name: str
    ) -> None:
        replica = Replica(infra, queue_name)
        try:
            due = datetime.now(UTC) - timedelta(seconds=1)
            workflow_id = await scheduled_workflow(db, {"type": "schedule", "every": "1s"}, due)
            async with db.begin() as conn:
                await conn.execute(
                    text("UPDATE workflows SET active = false WHERE id = :id"), {"id": workflow_id}
                )
            await replica.scheduler.poll_once()
            # Other tests' due workflows share the database: only this one's ticks count.
            jobs = await queued_jobs(infra, queue_name)
            assert [job for job in jobs if job["workflow_id"] == str(workflow_id)] == []
        finally:
            await replica.close()
