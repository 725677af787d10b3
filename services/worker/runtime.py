"""What one worker process builds once at boot and every job reuses.

RQ would run an `async def` job with `asyncio.run`, i.e. on a new event loop per job, so no
connection pool could survive from one job to the next. The job function is synchronous
instead and drives this long-lived loop, on which the database pool, the guarded HTTP client
and the node registry live for the life of the process.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.worker.config import WorkerSettings
from services.worker.engine import NodeRunner, RunEngine, VersionCache
from services.worker.engine.records import encode_json
from shared.db.engine import PromptlyClosed
from shared.nodes import EgressPolicy, build_http_client, load_registry
from shared.queue import RunJob
from shared.settings import Settings

log = logging.getLogger(__name__)

_current: WorkerRuntime | None = None


def build_db_engine(settings: Settings, *, pool_size: int, pre_ping: bool) -> AsyncEngine:
    """An asyncpg engine in AUTOCOMMIT (every statement the worker sends stands alone)."""
    return create_async_engine(
        settings.database_url,
        # Set once when a connection is made rather than around every checkout, as an
        # execution option would.
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        # Recycled before typical server/proxy idle timeouts can cut a pooled connection.
        pool_recycle=600,
        # jsonb refuses U+0000, which a webhook body may well contain.
        json_serializer=lambda value: encode_json(value).decode(),
        json_deserializer=orjson.loads,
        connect_args={
            "server_settings": {"statement_timeout": "30000"},
            # Readiness probes give up after 2 s; closing the abandoned connection must not
            # double that against a frozen server.
            "connection_class": PromptlyClosed,
        },
    )


class WorkerRuntime:
    """The event loop, database engine, HTTP client and node registry of one worker process."""

    def __init__(self, settings: Settings, worker_settings: WorkerSettings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        # One job at a time per process, so a small pool suffices. No pre-ping: it would add
        # a round trip to every checkout (a third of a run's database cost); a dead pooled
        # connection is invalidated on first use and the engine retries the statement.
        self.db = build_db_engine(settings, pool_size=2, pre_ping=False)
        self.registry = load_registry()
        self.http = build_http_client(EgressPolicy.from_env(settings.egress_allowlist))
        runner = NodeRunner(
            self.registry,
            self.http,
            payload_max_bytes=settings.step_payload_max_bytes,
            max_retry_wait_s=worker_settings.max_retry_wait_seconds,
        )
        self.engine = RunEngine(self.db, runner, VersionCache(worker_settings.version_cache_size))

    def warm_up(self) -> None:
        """Open the first database connection now rather than on the first job."""

        async def ping() -> None:
            async with self.db.connect() as conn:
                await conn.execute(text("SELECT 1"))

        self.loop.run_until_complete(ping())

    def execute(self, job: RunJob, job_timeout_s: float) -> str:
        """Run one job to completion on the process's loop (called from the RQ job function)."""
        return self.loop.run_until_complete(self.engine.execute(job, job_timeout_s=job_timeout_s))

    def close(self) -> None:
        """Release connections and the loop (worker shutdown)."""
        self.loop.run_until_complete(self.http.aclose())
        self.loop.run_until_complete(self.db.dispose())
        self.loop.close()


def install(runtime: WorkerRuntime | None) -> None:
    """Make `runtime` the one the job function uses (None uninstalls it)."""
    global _current
    _current = runtime


def current() -> WorkerRuntime:
    """The runtime of this worker process; fails outside one."""
    if _current is None:
        raise RuntimeError(
            "no worker runtime: execute_run only runs inside `python -m services.worker`"
        )
    return _current
