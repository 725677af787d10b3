"""The consumer in-process on a real Redis: backpressure, the queue list read every tick, drain."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis

from services.worker.consumer import Consumer
from services.worker.rqlayout import RqLayout
from shared.queue import RunEnqueuer, RunJob
from tests.fixtures.servers import Infra


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(infra.redis_url)
    yield redis_client
    await redis_client.aclose()


def _job(n: int) -> RunJob:
    return {
        "run_id": f"consumer-{secrets.token_hex(6)}-{n}",
        "workflow_id": "w",
        "owner_id": "o",
        "workflow_version": 1,
        "trigger": {"body": n, "headers": {}, "query": {}, "method": "POST", "received_at": ""},
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }


class Engine:
    """What the consumer calls per delivery: records it, ends it when the test says so."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def execute(self, job: RunJob, timeout_s: float) -> str:
        self.started.append(int(job["trigger"]["body"]))
        await self.release.wait()
        return "succeeded"


async def _until(predicate: Callable[[], bool], what: str, timeout: float = 5) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{what} within {timeout}s")


def _consumer(
    client: aioredis.Redis,
    blocking: aioredis.Redis,
    engine: Engine,
    queues: list[str],
    concurrency: int,
    every_s: float,
    idle_block_s: float,
) -> Consumer:
    """A consumer on the test's queues (read every tick), renewing and recovering `every_s`."""
    layout = RqLayout(
        client, f"consumer-test-{secrets.token_hex(3)}", execution_ttl_s=30, worker_ttl_s=30
    )
    return Consumer(
        layout,
        blocking,
        engine.execute,
        queues=lambda: list(queues),
        concurrency=concurrency,
        default_timeout_s=60,
        idle_block_s=idle_block_s,
        renew_every_s=every_s,
        recover_every_s=every_s,
    )


async def test_takes_only_free_slots_highest_queue_first_and_drains_on_stop(
    client: aioredis.Redis, infra: Infra
) -> None:
    high, low = f"high-{secrets.token_hex(3)}", f"low-{secrets.token_hex(3)}"
    queues = [low]
    for n in range(3):
        await RunEnqueuer(client, low, 60).enqueue(_job(n))
    for n in range(10, 12):
        await RunEnqueuer(client, high, 60).enqueue(_job(n))
    engine = Engine()
    blocking = aioredis.Redis.from_url(infra.redis_url)
    consumer = _consumer(client, blocking, engine, queues, 2, every_s=1, idle_block_s=0.2)
    task = asyncio.create_task(consumer.run())
    try:
        await _until(lambda: len(engine.started) == 2, "two runs started")
        # Two slots: two taken, the rest left on the queue for other workers.
        assert engine.started == [0, 1]
        assert await client.llen(f"rq:queue:{low}") == 1
        # The queue list is read every tick: a higher-priority queue added now goes first.
        queues[:] = [high, low]
        engine.release.set()
        await _until(lambda: len(engine.started) == 5, "every run started")
        assert engine.started[2:4] == [10, 11]
        consumer.stop(5)
        await asyncio.wait_for(task, 10)
        # Settled: every job ended (result TTL 0: deleted), nothing left started.
        assert await client.zcard(f"rq:wip:{low}") == 0
        assert await client.zcard(f"rq:wip:{high}") == 0
    finally:
        task.cancel()
        await blocking.aclose()


async def test_an_idle_consumer_sees_a_job_on_any_priority_queue_at_once(
    client: aioredis.Redis, infra: Infra
) -> None:
    base = f"idle-{secrets.token_hex(3)}"
    queues = [f"{base}:high", base, f"{base}:low"]
    engine = Engine()
    engine.release.set()
    blocking = aioredis.Redis.from_url(infra.redis_url)
    # A long block, so only a wake-up by the queue itself can explain a quick start.
    consumer = _consumer(client, blocking, engine, queues, 4, every_s=30, idle_block_s=5)
    task = asyncio.create_task(consumer.run())
    loop = asyncio.get_running_loop()
    waits: list[float] = []
    try:
        for n in range(9):
            await asyncio.sleep(0.05)  # idle again: every queue's pop is blocked
            queue = queues[1 + n % 2]  # normal and low: the queues after the first
            sent = loop.time()
            await RunEnqueuer(client, queue, 60).enqueue(_job(n))
            await _until(lambda n=n: n in engine.started, f"job {n} started")  # type: ignore[misc]
            waits.append(loop.time() - sent)
        # Watching only the first queue and polling the others every 200 ms, as the consumer
        # once did, puts the median near 100 ms.
        waits.sort()
        assert waits[len(waits) // 2] < 0.05, waits
    finally:
        consumer.stop(5)
        await asyncio.wait_for(task, 10)
        await blocking.aclose()
