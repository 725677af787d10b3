"""The run-data budget's slices (engine/data_budget.py) on a real Redis: a plain run costs no
round trip, the counter never passes the budget but by markers, processes share one budget, and
a stopping process gives back what it did not spend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import orjson
import pytest
import redis.asyncio as aioredis

from services.worker.engine.data_budget import KEY_PREFIX, RunDataBudget
from services.worker.engine.steps import StepRecord
from tests.fixtures.servers import Infra

PAYLOAD = {"blob": "x" * 1_000}
RUN_BYTES = 2 * len(orjson.dumps(PAYLOAD))  # recorded as the step's input and its output


class CountingRedis(aioredis.Redis):
    """A real client that counts the script calls it sends."""

    scripts = 0

    async def evalsha(self, *args: object, **kwargs: object) -> object:
        CountingRedis.scripts += 1
        return await super().evalsha(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[CountingRedis]:
    connection = cast(CountingRedis, CountingRedis.from_url(infra.redis_url))
    # Redis learns the script on its first call (NOSCRIPT, then a second EVALSHA).
    await RunDataBudget(connection, 10**9).apply(str(uuid.uuid4()), _steps())
    CountingRedis.scripts = 0
    yield connection
    await connection.aclose()


def _steps() -> list[StepRecord]:
    blob = orjson.Fragment(orjson.dumps(PAYLOAD))
    return [StepRecord(0, "shape", "transform", "succeeded", input=blob, output=blob)]


def _truncated(steps: list[StepRecord]) -> bool:
    return bool(orjson.loads(orjson.dumps(steps[0].output)).get("truncated"))


async def _used(client: aioredis.Redis, workflow: str) -> int:
    day = datetime.now(UTC).strftime("%Y%m%d")
    return int(await client.get(f"{KEY_PREFIX}{workflow}:{day}") or 0)


async def test_a_hundred_small_runs_cost_one_round_trip(client: CountingRedis) -> None:
    budget = RunDataBudget(client, budget_bytes=256 * 1024 * 1024)
    workflow = str(uuid.uuid4())
    for _ in range(100):
        steps = _steps()
        await budget.apply(workflow, steps)
        assert not _truncated(steps)
    assert CountingRedis.scripts == 1
    assert await _used(client, workflow) == RUN_BYTES + budget.slice_bytes


async def test_runs_beyond_the_budget_get_markers_and_the_counter_stays_within_it(
    client: CountingRedis,
) -> None:
    limit = 10 * RUN_BYTES
    budget = RunDataBudget(client, budget_bytes=limit)
    workflow = str(uuid.uuid4())
    runs = [_steps() for _ in range(15)]
    for steps in runs:
        await budget.apply(workflow, steps)
    assert [_truncated(steps) for steps in runs] == [False] * 10 + [True] * 5
    # The budget, then a marker per truncated payload (under 80 bytes each).
    assert limit <= await _used(client, workflow) <= limit + 5 * 2 * 80


async def test_runs_finishing_together_never_spend_a_slice_twice(client: CountingRedis) -> None:
    limit = 10 * RUN_BYTES
    budget = RunDataBudget(client, budget_bytes=limit)
    workflow = str(uuid.uuid4())
    runs = [_steps() for _ in range(20)]
    await asyncio.gather(*(budget.apply(workflow, steps) for steps in runs))
    fitted = sum(not _truncated(steps) for steps in runs)
    assert fitted * RUN_BYTES <= limit
    # Each reservation takes a run and a slice (0.16 of a run here): 8 fit in the budget, and
    # the slices left over pay for a ninth when they come back before the last answer does.
    assert fitted >= 8


async def test_processes_share_the_budget_and_a_stopping_one_gives_its_slice_back(
    client: CountingRedis,
) -> None:
    limit = 64 * RUN_BYTES  # a slice is 1/64 of the budget: one run
    first, second = RunDataBudget(client, limit), RunDataBudget(client, limit)
    workflow = str(uuid.uuid4())
    for _ in range(31):
        await first.apply(workflow, _steps())
    for _ in range(32):
        await second.apply(workflow, _steps())
    # The first process holds a slice it reserved beyond its last run: nothing is left.
    assert await _used(client, workflow) == limit
    await first.give_back()
    assert await _used(client, workflow) == limit - RUN_BYTES
    after = _steps()
    await second.apply(workflow, after)
    assert not _truncated(after)


async def test_redis_failing_records_every_run_whole() -> None:
    # Nothing listens on port 1: the call fails at once.
    unreachable = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    budget = RunDataBudget(unreachable, budget_bytes=1)
    runs = [_steps() for _ in range(3)]
    await asyncio.gather(*(budget.apply(str(uuid.uuid4()), steps) for steps in runs))
    assert not any(_truncated(steps) for steps in runs)
    await unreachable.aclose()
