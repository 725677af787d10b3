"""Runs that finish together are charged by one script call, in the order they finished, and
decide exactly as if each had been charged alone (engine/data_budget.py, on a real Redis)."""

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

PAYLOAD_CHARS = 1_000


class CountingRedis(aioredis.Redis):
    """A real client that counts the script calls it sends."""

    scripts = 0

    async def evalsha(self, *args: object, **kwargs: object) -> object:
        CountingRedis.scripts += 1
        return await super().evalsha(*args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[CountingRedis]:
    connection = cast(CountingRedis, CountingRedis.from_url(infra.redis_url))
    CountingRedis.scripts = 0
    yield connection
    await connection.aclose()


def _steps() -> list[StepRecord]:
    blob = orjson.Fragment(orjson.dumps({"blob": "x" * PAYLOAD_CHARS}))
    return [StepRecord(0, "shape", "transform", "succeeded", input=blob, output=blob)]


def _truncated(steps: list[StepRecord]) -> bool:
    return bool(orjson.loads(orjson.dumps(steps[0].output)).get("truncated"))


async def test_runs_ending_together_share_one_call_and_the_budget_in_order(
    client: CountingRedis,
) -> None:
    run_bytes = 2 * len(orjson.dumps({"blob": "x" * PAYLOAD_CHARS}))
    budget = RunDataBudget(client, budget_bytes=3 * run_bytes)
    # Redis learns the script on its first call (NOSCRIPT, then a second EVALSHA).
    await budget.apply(str(uuid.uuid4()), _steps())
    CountingRedis.scripts = 0
    workflow = str(uuid.uuid4())
    runs = [_steps() for _ in range(5)]
    await asyncio.gather(*(budget.apply(workflow, steps) for steps in runs))

    assert CountingRedis.scripts == 1
    assert [_truncated(steps) for steps in runs] == [False, False, False, True, True]
    used = await client.get(f"{KEY_PREFIX}{workflow}:" + _today())
    assert used is not None
    # Three runs' bytes, then the markers of the two that did not fit.
    assert 3 * run_bytes < int(used) < 3 * run_bytes + 400


async def test_each_workflow_has_its_own_counter_within_one_call(client: CountingRedis) -> None:
    run_bytes = 2 * len(orjson.dumps({"blob": "x" * PAYLOAD_CHARS}))
    budget = RunDataBudget(client, budget_bytes=run_bytes)
    heavy, other = str(uuid.uuid4()), str(uuid.uuid4())
    runs = [(heavy, _steps()), (heavy, _steps()), (other, _steps())]
    await asyncio.gather(*(budget.apply(workflow, steps) for workflow, steps in runs))
    assert [_truncated(steps) for _, steps in runs] == [False, True, False]


async def test_redis_failing_records_every_run_whole(infra: Infra) -> None:
    # Nothing listens on port 1: the call fails at once.
    unreachable = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    budget = RunDataBudget(unreachable, budget_bytes=1)
    runs = [_steps() for _ in range(3)]
    await asyncio.gather(*(budget.apply(str(uuid.uuid4()), steps) for steps in runs))
    assert not any(_truncated(steps) for steps in runs)
    await unreachable.aclose()


def _today() -> str:
    return datetime.now(UTC).strftime("%Y%m%d")
