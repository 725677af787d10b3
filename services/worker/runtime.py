"""What one worker process builds once at boot and every run reuses.

Built on the running event loop of the process's main thread; every run executes there (up to
the process's concurrency at once, driven by `consumer.Consumer`), sharing the database pool,
the guarded HTTP client and the node registry.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.worker.config import WorkerSettings
from services.worker.engine import NodeRunner, RunEngine, VersionCache
from services.worker.engine.children import ChildRuns
from services.worker.engine.credentials import CredentialVault
from services.worker.engine.data_budget import RunDataBudget
from services.worker.engine.error_workflows import ErrorRuns
from services.worker.engine.fairness import FairRenderer
from services.worker.engine.followups import Followups
from services.worker.engine.parking import Parking
from services.worker.engine.records import encode_json
from services.worker.engine.spawning import Spawner
from services.worker.flow.gate import FlowGate
from services.worker.flow.scripts import FlowScripts
from services.worker.loop import EngineLoop
from shared.db.engine import PromptlyClosed
from shared.nodes import EgressPolicy, build_http_client, load_registry
from shared.queue import RunEnqueuer, RunJob
from shared.settings import Settings

log = logging.getLogger(__name__)


def build_db_engine(
    settings: Settings, *, pool_size: int, pre_ping: bool, overflow: int | None = None
) -> AsyncEngine:
    """An asyncpg engine in AUTOCOMMIT (every statement the worker sends stands alone).

    `overflow` extra connections may open under a burst (default: `pool_size`); they are
    closed again as soon as they are returned.
    """
    return create_async_engine(
        settings.database_url,
        # Set once when a connection is made rather than around every checkout, as an
        # execution option would.
        isolation_level="AUTOCOMMIT",
        pool_size=pool_size,
        max_overflow=pool_size if overflow is None else overflow,
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


def pool_size_for(concurrency: int) -> int:
    """Database connections one process keeps: runs hold one only while they write.

    A run of inline nodes keeps its connection from claim to final write (one checkout); a run
    that waits on I/O gives it back while it waits, so a few connections serve 32 runs.
    """
    return max(2, min(concurrency, 8))


class WorkerRuntime:
    """The event loop, database engine, HTTP client and node registry of one worker process."""

    def __init__(self, settings: Settings, worker_settings: WorkerSettings) -> None:
        """Build on the running loop (call from a coroutine)."""
        self.settings = settings
        self.worker_settings = worker_settings
        self.engine_loop = EngineLoop(asyncio.get_running_loop())
        # No pre-ping: it would add a round trip to every checkout (a third of a run's
        # database cost); a dead pooled connection is invalidated on first use and the engine
        # retries the statement.
        # No overflow: with 32 runs in flight, an overflow connection would be opened and
        # closed again for every run past the pool (a PostgreSQL connection setup each), where
        # waiting a moment for a pooled one costs nothing.
        self.db = build_db_engine(
            settings,
            pool_size=pool_size_for(worker_settings.concurrency),
            pre_ping=False,
            overflow=0,
        )
        self.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, socket_timeout=10
        )
        self.registry = load_registry()
        self.http = build_http_client(EgressPolicy.from_env(settings.egress_allowlist))
        self.renderer = FairRenderer(
            slice_s=worker_settings.render_slice_ms / 1000,
            processes=worker_settings.render_processes,
        )
        spawner = Spawner(
            self.redis,
            RunEnqueuer(self.redis, settings.queue_name, settings.job_timeout_seconds),
        )
        children = ChildRuns(self.db, spawner)
        runner = NodeRunner(
            self.registry,
            self.http,
            payload_max_bytes=settings.step_payload_max_bytes,
            max_retry_wait_s=worker_settings.max_retry_wait_seconds,
            engine_loop=self.engine_loop,
            public_url=settings.public_url,
            resume_key=settings.resolved_webhook_key(),
            park_after_s=worker_settings.park_after_seconds,
            credentials=CredentialVault(self.db, settings.keyring()),
            renderer=self.renderer,
            cpu_budget_s=worker_settings.run_cpu_budget_seconds,
            children=children,
        )
        parking = Parking(self.redis, settings)
        self.engine = RunEngine(
            self.db,
            runner,
            VersionCache(worker_settings.version_cache_size),
            parking,
            Followups(children, ErrorRuns(self.db, spawner)),
            RunDataBudget(self.redis, settings.run_data_budget_bytes_per_day),
            FlowGate(FlowScripts(self.redis), parking.enqueuer),
            run_max_parallel=settings.run_max_parallel,
        )
        self.engine_loop.start()

    async def warm_up(self) -> None:
        """Open the first database connection now rather than on the first job."""
        async with self.db.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def execute(self, job: RunJob, job_timeout_s: float) -> str:
        """Run one delivery to completion; what happened (a run status, or why nothing ran)."""
        timeout = job_timeout_s or self.settings.job_timeout_seconds
        return await self.engine.execute(job, job_timeout_s=timeout)

    async def close(self) -> None:
        """Release connections and stop the loop clock (worker shutdown)."""
        try:
            await self.engine.cancels.close()
            if self.engine.data_budget is not None:
                await self.engine.data_budget.give_back()
            await self.http.aclose()
            await self.redis.aclose()
            await self.db.dispose()
        finally:
            self.renderer.close()
            self.engine_loop.stop()
