"""Run history retention: what is deleted, what never is, and that it goes in batches."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.retention import RetentionPruner
from shared.ids import uuid7_floor, uuid7_for
from tests.fixtures.servers import Infra
from tests.services.worker.harness import Workflow, create_user, create_workflow

NOW = datetime.now(UTC)


@pytest.fixture
async def rds(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(infra.redis_url)
    yield client
    await client.aclose()


def pruner(db: AsyncEngine, rds: aioredis.Redis, **overrides: float) -> RetentionPruner:
    settings = {"days": 14, "max_runs": 10_000, "batch": 500, **overrides}
    return RetentionPruner(
        db,
        rds,
        f"retention-test-{secrets.token_hex(4)}",
        days=settings["days"],
        max_runs=int(settings["max_runs"]),
        interval_s=60,
        batch=int(settings["batch"]),
        pause_s=0,
    )


async def workflow_with(db: AsyncEngine, retention: dict[str, object] | None = None) -> Workflow:
    workflow = await create_workflow(db, await create_user(db), [])
    if retention:
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE workflows SET retention = CAST(:r AS jsonb) WHERE id = :id"),
                {"r": orjson.dumps(retention).decode(), "id": workflow.id},
            )
    return workflow


async def add_run(db: AsyncEngine, workflow: Workflow, age: timedelta, status: str) -> uuid.UUID:
    """A run accepted `age` ago with one step; its id is a UUIDv7 of that moment."""
    accepted = NOW - age
    run_id = uuid7_for(int(accepted.timestamp() * 1000), secrets.token_bytes(8))
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status,"
                " trigger, attempt, accepted_at) VALUES (:id, :w, :o, 1, :s, '{}'::jsonb, 1, :a)"
            ),
            {"id": run_id, "w": workflow.id, "o": workflow.owner_id, "s": status, "a": accepted},
        )
        await conn.execute(
            text(
                "INSERT INTO run_steps (run_id, position, node_id, type, status, attempt)"
                " VALUES (:id, 0, 'n', 'log', 'succeeded', 1)"
            ),
            {"id": run_id},
        )
    return run_id


async def remaining(db: AsyncEngine, workflow: Workflow) -> dict[uuid.UUID, int]:
    """run id -> number of its steps still stored."""
    async with db.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT r.id, count(s.id) FROM workflow_runs r"
                " LEFT JOIN run_steps s ON s.run_id = r.id WHERE r.workflow_id = :w GROUP BY r.id"
            ),
            {"w": workflow.id},
        )
        return {run_id: count for run_id, count in rows}


class TestByAge:
    async def test_deletes_finished_runs_older_than_the_retention(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        workflow = await workflow_with(db)
        old = [await add_run(db, workflow, timedelta(days=20), s) for s in ("succeeded", "failed")]
        young = await add_run(db, workflow, timedelta(days=1), "succeeded")
        await pruner(db, rds).prune_once()
        left = await remaining(db, workflow)
        assert young in left
        assert not set(old) & set(left)

    async def test_never_deletes_a_run_in_progress(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        workflow = await workflow_with(db)
        live = [
            await add_run(db, workflow, timedelta(days=30), status)
            for status in ("queued", "running", "waiting")
        ]
        await pruner(db, rds).prune_once()
        assert set(live) <= set(await remaining(db, workflow))

    async def test_a_workflow_override_keeps_runs_longer(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        workflow = await workflow_with(db, {"days": 60})
        kept = await add_run(db, workflow, timedelta(days=20), "succeeded")
        await pruner(db, rds).prune_once()
        assert kept in await remaining(db, workflow)

    async def test_a_retention_longer_than_dates_go_does_not_stop_the_pass(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        # The full suite leaves such workflows behind; one must not break pruning the others.
        forever = await workflow_with(db, {"days": 10**7})
        kept = await add_run(db, forever, timedelta(days=20), "succeeded")
        workflow = await workflow_with(db)
        old = await add_run(db, workflow, timedelta(days=20), "succeeded")
        await pruner(db, rds).prune_once()
        assert kept in await remaining(db, forever)
        assert old not in await remaining(db, workflow)


class TestByCount:
    async def test_keeps_the_newest_runs_in_small_batches(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        workflow = await workflow_with(db, {"max_runs": 5})
        runs = [
            await add_run(db, workflow, timedelta(minutes=30 - i), "succeeded") for i in range(23)
        ]
        stats = await pruner(db, rds, batch=4).prune_once()
        assert set(await remaining(db, workflow)) == set(runs[-5:])
        assert stats.by_count == 18


class TestKeepOnlyFailedDetails:
    async def test_deletes_the_steps_of_runs_that_did_not_fail(
        self, db: AsyncEngine, rds: aioredis.Redis
    ) -> None:
        workflow = await workflow_with(db, {"keep_details": "failed"})
        ok = await add_run(db, workflow, timedelta(minutes=5), "succeeded")
        bad = await add_run(db, workflow, timedelta(minutes=4), "failed")
        busy = await add_run(db, workflow, timedelta(minutes=3), "running")
        await pruner(db, rds).prune_once()
        assert await remaining(db, workflow) == {ok: 0, bad: 1, busy: 1}


def test_uuid7_floor_orders_before_every_id_of_later_moments() -> None:
    moment = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    later = uuid7_for(int(moment.timestamp() * 1000), b"x")
    earlier = uuid7_for(int(moment.timestamp() * 1000) - 1, b"x")
    assert earlier < uuid7_floor(int(moment.timestamp() * 1000)) <= later


def test_uuid7_floor_clamps_moments_before_the_epoch() -> None:
    # A workflow kept for 100,000 years asks for runs before year -98,000.
    assert uuid7_floor(-(10**15)) == uuid7_floor(0)
