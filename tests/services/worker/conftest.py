"""Fixtures: one shared two-process worker for behaviour tests, a local API, the database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import LocalApi, Queue, running_api, start_worker, worker_env

# Small enough that a test payload can exceed it, big enough for every ordinary step.
PAYLOAD_MAX_BYTES = 4096


@pytest.fixture(scope="session")
async def db(infra: Infra) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(infra.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def api() -> Iterator[LocalApi]:
    with running_api() as server:
        yield server


@pytest.fixture(scope="module")
def shared_env(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return worker_env(
        infra.database_url,
        infra.redis_url,
        tmp_path_factory.mktemp("worker-data"),
        AUTOMATEOS_STEP_PAYLOAD_MAX_BYTES=str(PAYLOAD_MAX_BYTES),
        # The sweep test needs a pass every second; runs it may touch are hours old.
        AUTOMATEOS_WORKER_SWEEP_INTERVAL_SECONDS="1",
    )


@pytest.fixture(scope="module")
def shared_worker(
    shared_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """`python -m services.worker --processes 2`, as `make up` runs it."""
    service = start_worker(shared_env, tmp_path_factory.mktemp("worker-logs"), processes=2)
    yield service
    stop_process(service.proc, timeout=20)


@pytest.fixture
def env(infra: Infra, tmp_path: Path) -> dict[str, str]:
    """The environment of a worker a test starts for itself (with the test plugins loaded)."""
    return worker_env(
        infra.database_url,
        infra.redis_url,
        tmp_path / "data",
        AUTOMATEOS_NODE_PACKAGES="tests.services.worker.plugins",
    )


@pytest.fixture
async def jobs(infra: Infra, env: dict[str, str]) -> AsyncIterator[Queue]:
    """The queue of the worker a test starts for itself (`env`)."""
    queue = Queue(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
    yield queue
    await queue.close()


@pytest.fixture
async def queue(
    infra: Infra, shared_env: dict[str, str], shared_worker: ServiceProcess
) -> AsyncIterator[Queue]:
    jobs = Queue(infra.redis_url, shared_env["AUTOMATEOS_QUEUE_NAME"])
    yield jobs
    await jobs.close()


def log_text(service: ServiceProcess) -> str:
    return Path(service.log_path).read_text(errors="replace")
