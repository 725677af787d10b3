"""One worker for the flow-control tests (package scope), and a Redis client to inspect keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import Queue, start_worker, worker_env
from tests.services.worker.test_processes import FAST_RECOVERY


@pytest.fixture(scope="package")
def env(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("flow-data")
    # Runs that wait longer than 2 s park (the waiting-reason test needs a parked run).
    return worker_env(
        infra.database_url,
        infra.redis_url,
        data,
        **FAST_RECOVERY,
        AUTOMATEOS_WORKER_PARK_AFTER_SECONDS="2",
    )


@pytest.fixture(scope="package")
def own_worker(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One worker for the package (a SIGKILLed process is restarted by its supervisor)."""
    service = start_worker(env, tmp_path_factory.mktemp("flow-logs"), processes=1, concurrency=8)
    yield service
    stop_process(service.proc, timeout=20)


@pytest.fixture
async def jobs(infra: Infra, env: dict[str, str]) -> AsyncIterator[Queue]:
    queue = Queue(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
    yield queue
    await queue.close()


@pytest.fixture
async def client(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(infra.redis_url)
    yield redis
    await redis.aclose()
