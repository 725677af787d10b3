"""Fixtures for the ingest tests.

Ingest runs as a real process (`python -m services.ingest`) against the session's real Redis, on
a queue of its own that no worker consumes, so the jobs it stores stay there to be asserted on.
Routing records are written straight into Redis, as the workflows service would mirror them, so
these tests do not depend on the workflows service.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from scripts.localinfra import free_port, stop_process
from shared.hooks import HookRecord, SignatureConfig, encode_record, hook_key, token_hash
from shared.queue import RunJob, queue_key
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess, stack_env, start_service, wait_ready

# Small, so the 413 tests send kilobytes rather than the 10 MiB default.
MAX_BODY_BYTES = 64 * 1024


def as_text(value: bytes | str | None) -> str:
    """A value the sync Redis client returned (bytes: we never ask it to decode)."""
    assert value is not None
    return value.decode() if isinstance(value, bytes) else value


def as_bytes(value: bytes | str | None) -> bytes:
    assert isinstance(value, bytes)
    return value


class FakeWorkflows(ThreadingHTTPServer):
    """Plays the workflows service's `GET /internal/hooks/{token_hash}` on 127.0.0.1."""

    def __init__(self, internal_token: str) -> None:
        super().__init__(("127.0.0.1", 0), _InternalHooksHandler)
        self.internal_token = internal_token
        self.records: dict[str, HookRecord] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, X-Internal-Token)
        self.fail_with: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _InternalHooksHandler(BaseHTTPRequestHandler):
    server: FakeWorkflows

    def do_GET(self) -> None:
        presented = self.headers.get("X-Internal-Token")
        self.server.requests.append((self.path, presented))
        prefix = "/internal/hooks/"
        record = self.server.records.get(self.path.removeprefix(prefix))
        if presented != self.server.internal_token:
            self._reply(401, {"detail": "invalid internal token"})
        elif self.server.fail_with is not None:
            self._reply(self.server.fail_with, {"detail": "simulated failure"})
        elif not self.path.startswith(prefix) or record is None:
            self._reply(404, {"detail": "unknown webhook token"})
        else:
            self._reply(200, record)

    def _reply(self, status: int, body: object) -> None:
        payload = orjson.dumps(body)
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean


@contextmanager
def running_fake_workflows() -> Iterator[FakeWorkflows]:
    server = FakeWorkflows(secrets.token_urlsafe(32))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def ingest_env(
    infra: Infra, data_dir: Path, workflows: FakeWorkflows | None, **overrides: str
) -> dict[str, str]:
    """The stack's environment with a queue of our own, a small body limit, and the fake
    workflows service (when given) as the token fallback."""
    env = stack_env(infra.database_url, infra.redis_url, data_dir)
    env["AUTOMATEOS_QUEUE_NAME"] = f"ingest-test-{secrets.token_hex(4)}"
    env["AUTOMATEOS_MAX_BODY_BYTES"] = str(MAX_BODY_BYTES)
    if workflows is not None:
        env["AUTOMATEOS_WORKFLOWS_URL"] = workflows.url
        env["AUTOMATEOS_INTERNAL_TOKEN"] = workflows.internal_token
    env.update(overrides)
    return env


@contextmanager
def running_ingest(env: dict[str, str], base_dir: Path) -> Iterator[ServiceProcess]:
    """An ingest process of our own (its log in a folder of its own), stopped at the end."""
    port = free_port()
    log_dir = base_dir / f"ingest-{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    service = start_service("ingest", ["--port", str(port)], port, env, log_dir)
    try:
        wait_ready(service)
        yield service
    finally:
        stop_process(service.proc, timeout=20)


@dataclass
class RoutedHook:
    """A webhook token with its routing record in Redis."""

    redis: redis.Redis
    token: str
    record: HookRecord

    @property
    def path(self) -> str:
        return f"/hooks/{self.token}"

    @property
    def workflow_id(self) -> str:
        return self.record["workflow_id"]

    def publish(self, **changes: Any) -> None:
        """Write the record (with `changes`) as the workflows service would."""
        self.record = {**self.record, **changes}  # type: ignore[typeddict-item]
        self.redis.set(hook_key(token_hash(self.token)), encode_record(self.record))

    def revoke(self) -> None:
        """Remove the record, as a rotation or deletion does."""
        self.redis.delete(hook_key(token_hash(self.token)))


@dataclass
class Ingest:
    """A running ingest process and what it writes to."""

    service: ServiceProcess
    env: dict[str, str]
    redis: redis.Redis
    workflows: FakeWorkflows

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def queue(self) -> str:
        return queue_key(self.env["AUTOMATEOS_QUEUE_NAME"])

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def route(
        self, *, active: bool = True, signature: SignatureConfig | None = None, version: int = 1
    ) -> RoutedHook:
        """A new token routed to a new workflow."""
        hook = RoutedHook(
            self.redis,
            secrets.token_urlsafe(32),
            {
                "workflow_id": str(uuid.uuid4()),
                "owner_id": str(uuid.uuid4()),
                "version": version,
                "active": active,
                "signature": signature,
            },
        )
        hook.publish()
        return hook

    def queued_ids(self) -> list[str]:
        return [as_text(raw) for raw in self.redis.lrange(self.queue, 0, -1)]

    def job(self, run_id: str) -> RunJob:
        """The RunJob of a queued run, read back with RQ's own reader."""
        job = Job.fetch(run_id, connection=self.redis, serializer=JSONSerializer)
        assert job.origin == self.env["AUTOMATEOS_QUEUE_NAME"]
        payload: RunJob = job.args[0]
        return payload


@pytest.fixture(scope="session")
def ingest(infra: Infra, stack_dir: Path) -> Iterator[Ingest]:
    with running_fake_workflows() as workflows:
        env = ingest_env(infra, stack_dir / "data", workflows)
        with running_ingest(env, stack_dir) as service:
            client = redis.Redis.from_url(infra.redis_url)
            yield Ingest(service, env, client, workflows)
            client.close()


@pytest.fixture(autouse=True)
def empty_queue(ingest: Ingest) -> None:
    """Each test starts with nothing queued, so "one job" means one job of this test."""
    ingest.redis.delete(ingest.queue)


@pytest.fixture
def client(ingest: Ingest) -> Iterator[httpx.Client]:
    with ingest.client() as http:
        yield http


@pytest.fixture
def hook(ingest: Ingest) -> RoutedHook:
    return ingest.route()


@pytest.fixture
def route(ingest: Ingest) -> Callable[..., RoutedHook]:
    return ingest.route
