"""Fixtures of the workflows service tests: clients, direct PostgreSQL/Redis access, and extra
workflows processes (a private queue no worker consumes; a Redis that is down)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from scripts.localinfra import free_port, stop_process
from shared.crypto import Keyring
from shared.hooks import hook_key, token_hash
from tests.conftest import ApiUser
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess, Stack, start_service, wait_ready

LOG_NODE = {"id": "note", "type": "log", "params": {"message": "got {{ trigger.body }}"}}
SECRET = "s3cr3t-" + "x" * 24  # recognisable in any response or log


@dataclass
class ExtraService:
    """A workflows process started by a test module, beside the stack's own."""

    process: ServiceProcess
    queue_name: str

    @property
    def url(self) -> str:
        return self.process.url

    def client(self, user: ApiUser) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=user.headers, timeout=10)


@pytest.fixture
def api(user: ApiUser) -> Iterator[httpx.Client]:
    with user.client("workflows") as client:
        yield client


@pytest.fixture
def other_api(other_user: ApiUser) -> Iterator[httpx.Client]:
    with other_user.client("workflows") as client:
        yield client


@pytest.fixture(scope="session")
def db(infra: Infra) -> Database:
    return Database(infra.database_url)


@pytest.fixture(scope="session")
def rds(infra: Infra) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(infra.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def internal_token(stack: Stack) -> str:
    # Generated into the shared data folder by the first service that needed it.
    return (Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "internal-token").read_text().strip()


@pytest.fixture(scope="session")
def keyring(stack: Stack) -> Keyring:
    """The stack's encryption keys, generated into its data folder by the first service."""
    return Keyring.parse(
        (Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "encryption-keys").read_text().strip()
    )


def start_workflows(
    stack: Stack, log_dir: Path, env: dict[str, str], *, wait_for: str = "/readyz"
) -> ServiceProcess:
    """Start another workflows process on the stack's database, auth and data folder."""
    port = free_port()
    name = f"workflows-{port}"
    service = start_service("workflows", ["--port", str(port)], port, {**stack.env, **env}, log_dir)
    service.name = name
    if wait_for == "/readyz":
        wait_ready(service)
        return service
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            raise RuntimeError(f"{name} exited:\n{service.log_tail()}")
        try:
            if httpx.get(service.url + wait_for, timeout=1).status_code == 200:
                return service
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    stop_process(service.proc)
    raise TimeoutError(f"{name} did not answer {wait_for}:\n{service.log_tail()}")


@pytest.fixture(scope="session")
def private_queue(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtraService]:
    """A workflows process whose queue no worker consumes, so accepted jobs stay visible
    (and with a 64 KiB body limit)."""
    queue_name = f"tests-private-{secrets.token_hex(4)}"
    log_dir = tmp_path_factory.mktemp("private-queue")
    env = {"AUTOMATEOS_QUEUE_NAME": queue_name, "AUTOMATEOS_MAX_BODY_BYTES": "65536"}
    service = start_workflows(stack, log_dir, env)
    yield ExtraService(service, queue_name)
    stop_process(service.proc, timeout=20)


@pytest.fixture(scope="session")
def redis_down(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtraService]:
    """A workflows process whose Redis URL points at a port nothing listens on.

    It is alive but never ready, so it is awaited on /healthz.
    """
    log_dir = tmp_path_factory.mktemp("redis-down")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    service = start_workflows(stack, log_dir, {"REDIS_URL": dead}, wait_for="/healthz")
    yield ExtraService(service, stack.env["AUTOMATEOS_QUEUE_NAME"])
    stop_process(service.proc, timeout=20)


def create_workflow(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "wf", "nodes": [LOG_NODE], **fields}
    response = client.post("/workflows", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def webhook_hash(workflow: dict[str, Any]) -> str:
    return token_hash(workflow["webhook_url"].rsplit("/", 1)[1])


def record_key(workflow: dict[str, Any]) -> str:
    return hook_key(webhook_hash(workflow))
