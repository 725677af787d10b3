"""The supervisor's singleton jobs: due runs, the scheduler and run retention, each leased.

Every worker pod's supervisor runs these loops; a Redis lease per job (lease.py, the one lease
primitive; the recovery sweep uses it too) makes one replica active and keeps the others
standing by, so they scale with the worker Deployment (at least one replica must run for
schedules to tick and parked runs to resume: KEDA's `minReplicas` is 1 by default).
"""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import create_async_engine

from services.worker.dueruns import DueRunPoller
from services.worker.retention import RetentionPruner
from services.worker.scheduler import Scheduler
from shared.queue import RunEnqueuer
from shared.settings import Settings


class BackgroundJobs:
    """Builds the scheduler and the pruner with their own pool and Redis client."""

    def __init__(self, settings: Settings, *, due_interval_s: float = 1.0) -> None:
        # Their own small pool (transactions, unlike the supervisor's AUTOCOMMIT probe engine).
        self.db = create_async_engine(
            settings.database_url,
            pool_size=2,
            max_overflow=0,
            pool_pre_ping=True,
            connect_args={"server_settings": {"statement_timeout": "30000"}},
        )
        self.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        enqueuer = RunEnqueuer(self.redis, settings.queue_name, settings.job_timeout_seconds)
        self.scheduler = Scheduler(
            self.db,
            self.redis,
            enqueuer,
            poll_s=settings.schedule_poll_seconds,
            misfire_grace_s=settings.schedule_misfire_grace_seconds,
        )
        self.pruner = RetentionPruner(
            self.db,
            self.redis,
            f"automateos:retention:{settings.queue_name}",
            days=settings.run_retention_days,
            max_runs=settings.run_retention_max_per_workflow,
            interval_s=settings.run_retention_interval_seconds,
            batch=settings.run_retention_batch,
            rest_ratio=settings.run_retention_rest_ratio,
        )
        self.due_runs = DueRunPoller(
            self.db,
            self.redis,
            enqueuer,
            interval_s=due_interval_s,
            batch=500,
            # A continuation lost on its way (Redis without its append-only file) is sent again.
            redeliver_after_s=60.0,
        )
        self.scheduler_enabled = settings.scheduler_enabled
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the loops on the running event loop."""
        self._tasks = [
            asyncio.create_task(self.due_runs.run_forever()),
            asyncio.create_task(self.pruner.run_forever()),
        ]
        if self.scheduler_enabled:
            self._tasks.append(asyncio.create_task(self.scheduler.run_forever()))

    async def stop(self) -> None:
        """Stop the loops and hand the leases over at once (a standby takes them)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(Exception):
            await self.due_runs.lease.release()
            await self.scheduler.lease.release()
            await self.pruner.lease.release()
        await self.redis.aclose()
        await self.db.dispose()
