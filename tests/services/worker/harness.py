"""Helpers for driving real worker processes: rows in PostgreSQL, jobs on Redis, a local API."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import free_port
from shared.ids import uuid7
from shared.queue import RunEnqueuer, RunJob
from tests.fixtures.stack import ServiceProcess, start_service, wait_ready

TERMINAL = ("succeeded", "failed", "cancelled")


# --- the local HTTP API the http_request node talks to ---------------------------------------


@dataclass
class Hit:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class LocalApi:
    """A threaded HTTP server on 127.0.0.1 that records every request it gets."""

    base_url: str = ""
    hits: list[Hit] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # /slow/<name>?ms=N: requests of one name being answered now, and the most at once.
    in_flight: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def hits_for(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]

    def hits_for_prefix(self, prefix: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path.startswith(prefix)]


def _handler(api: LocalApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            query = parse_qs(parts.query)
            hit = Hit(
                parts.path,
                query,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                time.monotonic(),
            )
            with api.lock:
                api.hits.append(hit)
                count = api.counts[parts.path] = api.counts.get(parts.path, 0) + 1
            if parts.path.startswith("/flaky/"):
                # Fails `fail` times (status `status`, optional Retry-After), then succeeds.
                if count <= int(query.get("fail", ["2"])[0]):
                    extra = {}
                    if "retry_after" in query:
                        extra["Retry-After"] = query["retry_after"][0]
                    self._answer(int(query.get("status", ["503"])[0]), {"try": count}, extra)
                    return
                self._answer(200, {"ok": True, "tries": count})
                return
            if parts.path.startswith("/slow/"):
                with api.lock:
                    now = api.in_flight[parts.path] = api.in_flight.get(parts.path, 0) + 1
                    api.peak[parts.path] = max(api.peak.get(parts.path, 0), now)
                time.sleep(int(query.get("ms", ["200"])[0]) / 1000)
                with api.lock:
                    api.in_flight[parts.path] -= 1
                self._answer(200, {"slept_ms": int(query.get("ms", ["200"])[0])})
                return
            if parts.path.startswith("/status/"):
                self._answer(int(parts.path.rsplit("/", 1)[1]), {"status": "as asked"})
                return
            self._answer(
                200,
                {
                    "method": self.command,
                    "path": parts.path,
                    "json": json.loads(body) if body else None,
                },
            )

        do_GET = do_POST = do_PUT = _serve

    return Handler


@contextmanager
def running_api() -> Iterator[LocalApi]:
    api = LocalApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


# --- rows and jobs ---------------------------------------------------------------------------


async def create_user(db: AsyncEngine) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO users (id, email, password_hash, created_at)"
                " VALUES (:id, :e, 'x', now())"
            ),
            {"id": user_id, "e": f"worker-{secrets.token_hex(6)}@example.com"},
        )
    return user_id


@dataclass(frozen=True)
class Workflow:
    id: uuid.UUID
    owner_id: uuid.UUID
    version: int


async def create_workflow(
    db: AsyncEngine, owner_id: uuid.UUID, nodes: list[dict[str, Any]], version: int = 1
) -> Workflow:
    """A workflow row and its immutable version row, as the workflows service writes them."""
    workflow_id = uuid.uuid4()
    nodes_json = orjson.dumps(nodes).decode()
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflows (id, owner_id, name, description, active, version, nodes,"
                " trigger, webhook_token_hash, webhook_nonce, created_at, updated_at) VALUES"
                " (:id, :owner, 'test', '', true, :v, CAST(:nodes AS jsonb), '{}'::jsonb, :hash,"
                " :nonce, now(), now())"
            ),
            {
                "id": workflow_id,
                "owner": owner_id,
                "v": version,
                "nodes": nodes_json,
                "hash": secrets.token_hex(32),
                "nonce": secrets.token_hex(8),
            },
        )
        await conn.execute(
            text(
                "INSERT INTO workflow_versions (workflow_id, version, nodes, created_at)"
                " VALUES (:id, :v, CAST(:nodes AS jsonb), now())"
            ),
            {"id": workflow_id, "v": version, "nodes": nodes_json},
        )
    return Workflow(workflow_id, owner_id, version)


def run_job(
    workflow: Workflow,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    idempotency_key: str | None = None,
    run_id: str | None = None,
) -> RunJob:
    return {
        "run_id": run_id or str(uuid7()),
        "workflow_id": str(workflow.id),
        "owner_id": str(workflow.owner_id),
        "workflow_version": workflow.version,
        "trigger": {
            "body": body if body is not None else {},
            "headers": headers or {"content-type": "application/json"},
            "query": {},
            "method": "POST",
            "received_at": datetime.now(UTC).isoformat(),
        },
        "idempotency_key": idempotency_key,
        "traceparent": None,
        "retry_of": None,
    }


class Queue:
    """Enqueues jobs exactly as ingest does, on a queue private to the test."""

    def __init__(self, redis_url: str, name: str, job_timeout_s: int = 60) -> None:
        self.name = name
        self.client = aioredis.Redis.from_url(redis_url)
        self.job_timeout_s = job_timeout_s

    async def put(self, job: RunJob, *, job_timeout_s: int | None = None) -> str:
        enqueuer = RunEnqueuer(self.client, self.name, job_timeout_s or self.job_timeout_s)
        await enqueuer.enqueue(job)
        return job["run_id"]

    async def length(self) -> int:
        return int(await self.client.llen(f"rq:queue:{self.name}"))

    async def close(self) -> None:
        await self.client.aclose()


# --- reading what the worker recorded --------------------------------------------------------


async def fetch_run(db: AsyncEngine, run_id: str) -> dict[str, Any] | None:
    async with db.connect() as conn:
        row = (
            (
                await conn.execute(
                    text("SELECT * FROM workflow_runs WHERE id = :id"), {"id": uuid.UUID(run_id)}
                )
            )
            .mappings()
            .first()
        )
    return dict(row) if row else None


async def fetch_steps(db: AsyncEngine, run_id: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text("SELECT * FROM run_steps WHERE run_id = :id ORDER BY position, id"),
                    {"id": uuid.UUID(run_id)},
                )
            )
            .mappings()
            .all()
        )
    return [dict(row) for row in rows]


async def wait_run(
    db: AsyncEngine, run_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 15
) -> dict[str, Any]:
    """Poll until the run reaches one of `statuses`; fail with what it is instead."""
    end = time.monotonic() + timeout
    run = None
    while time.monotonic() < end:
        run = await fetch_run(db, run_id)
        if run is not None and run["status"] in statuses:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} not in {statuses} within {timeout}s: {run}")


async def wait_job_gone(redis_url: str, run_id: str, timeout: float = 10) -> None:
    """Wait until RQ deleted the job hash, i.e. a worker finished handling this delivery."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not await client.exists(f"rq:job:{run_id}"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {run_id} still in Redis after {timeout}s")
    finally:
        await client.aclose()


# --- worker processes ------------------------------------------------------------------------


def worker_env(database_url: str, redis_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "AUTOMATEOS_ENV": "local",
        "AUTOMATEOS_DATA_DIR": str(data_dir),
        "AUTOMATEOS_METRICS_PORT": str(free_port()),
        "AUTOMATEOS_QUEUE_NAME": f"worker-test-{secrets.token_hex(4)}",
        "AUTOMATEOS_EGRESS_ALLOWLIST": "127.0.0.1,localhost",
        # The database is shared by every test: only the schedule tests run a scheduler.
        "AUTOMATEOS_SCHEDULER_ENABLED": "false",
        **extra,
    }


def start_worker(
    env: dict[str, str], log_dir: Path, processes: int = 1, concurrency: int | None = None
) -> ServiceProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    args = ["--processes", str(processes)]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    service = start_service(
        "worker",
        args,
        int(env["AUTOMATEOS_METRICS_PORT"]),
        env,
        log_dir,
    )
    wait_ready(service)
    return service


def readyz(service: ServiceProcess) -> httpx.Response:
    return httpx.get(f"{service.url}/readyz", timeout=5)
