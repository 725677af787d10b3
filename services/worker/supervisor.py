"""The supervisor: the process pool, its probes and metrics, and its singleton jobs.

Kubernetes sends SIGTERM to this process only; the pool forwards it so every worker process
finishes its runs in flight and takes no new one, then the supervisor exits once all have.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Awaitable
from pathlib import Path

import orjson
import redis
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.process_collector import ProcessCollector

from services.worker.background import BackgroundJobs
from services.worker.collectors import QueueCollector, WorkerProcessCollector
from services.worker.config import WorkerSettings
from services.worker.flow.census import WaitingCensus
from services.worker.pool import ProcessPool
from services.worker.probes import ProbeServer, Response
from services.worker.recovery import RecoverySweep
from services.worker.runtime import build_db_engine
from shared.readiness import database_check, redis_check
from shared.service import ReadinessCheck
from shared.settings import Settings

log = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 2.0
# How often the waiting runs are counted by reason (services/worker/flow/census.py).
CENSUS_INTERVAL_S = 15.0


class Supervisor:
    """Starts and watches the worker processes and serves their probes and metrics."""

    def __init__(
        self,
        settings: Settings,
        worker_settings: WorkerSettings,
        *,
        processes: int,
        host: str,
        port: int,
        log_level: str,
    ) -> None:
        self.settings = settings
        self.worker_settings = worker_settings
        self.host = host
        self.port = port
        # Private per supervisor: stale files of an earlier run would corrupt the merged metrics.
        base = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.base_dir = Path(tempfile.mkdtemp(prefix="automateos-worker-", dir=base))
        metrics_dir = self.base_dir / "metrics"
        run_dir = self.base_dir / "run"
        metrics_dir.mkdir()
        run_dir.mkdir()
        self.pool = ProcessPool(
            processes,
            metrics_dir=metrics_dir,
            run_dir=run_dir,
            process_args=[
                "--log-level",
                log_level,
                "--concurrency",
                str(worker_settings.concurrency),
            ],
        )
        self.db = build_db_engine(settings, pool_size=1, pre_ping=True)
        self.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=_CHECK_TIMEOUT_S, socket_timeout=5
        )
        self._scrape_redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=1
        )
        self.checks: dict[str, ReadinessCheck] = {
            "database": database_check(self.db),
            "redis": redis_check(self.redis),
        }
        self.registry = CollectorRegistry()
        # prometheus-client leaves these two untyped.
        MultiProcessCollector(self.registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
        self.registry.register(QueueCollector(self._scrape_redis, settings.queue_name))
        self.registry.register(WorkerProcessCollector(self.pool.views))
        self.census = WaitingCensus(self.db, self.redis, settings.queue_name, CENSUS_INTERVAL_S)
        self.registry.register(self.census)
        ProcessCollector(registry=self.registry)
        self.sweep = RecoverySweep(
            self.db,
            self.redis,
            settings,
            stale_after_s=settings.job_timeout_seconds + worker_settings.sweep_margin_seconds,
            interval_s=worker_settings.sweep_interval_seconds,
            batch=worker_settings.sweep_batch,
        )

    async def run(self) -> int:
        """Serve until a SIGTERM/SIGINT has drained every worker process; return the exit code."""
        loop = asyncio.get_running_loop()
        probes = ProbeServer(
            {"/healthz": self._healthz, "/readyz": self._readyz, "/metrics": self._metrics}
        )
        try:
            server = await probes.start(self.host, self.port)
        except OSError as exc:
            log.error("cannot listen on %s:%d: %s", self.host, self.port, exc)
            self._cleanup_dirs()
            return 1
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.pool.signal, sig)
        log.info(
            "supervising %d worker processes (%d runs each at once) on queue %s; probes on %s:%d",
            len(self.pool.slots),
            self.worker_settings.concurrency,
            self.settings.queue_name,
            self.host,
            self.port,
        )
        sweeper = asyncio.create_task(self._sweep_forever())
        census = asyncio.create_task(self.census.run_forever())
        background = BackgroundJobs(
            self.settings, due_interval_s=self.worker_settings.scheduler_interval_seconds
        )
        background.start()
        try:
            await self.pool.supervise()
        finally:
            await background.stop()
            sweeper.cancel()
            census.cancel()
            server.close()
            await server.wait_closed()
            await self.redis.aclose()
            self._scrape_redis.close()
            await self.db.dispose()
            self._cleanup_dirs()
        log.info("all worker processes stopped")
        return 0

    async def _healthz(self) -> Response:
        return 200, "application/json", b'{"status":"ok"}'

    async def _readyz(self) -> Response:
        checks: dict[str, str] = {}
        if self.pool.draining:
            checks["supervisor"] = "draining"
        checks.update(
            self.pool.process_states(self.worker_settings.ready_max_heartbeat_age_seconds)
        )
        names = list(self.checks)
        results = await asyncio.gather(*(self._check(self.checks[name]()) for name in names))
        checks.update(zip(names, results, strict=True))
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return (200 if ready else 503), "application/json", orjson.dumps(body)

    @staticmethod
    async def _check(probe: Awaitable[object]) -> str:
        try:
            await asyncio.wait_for(probe, _CHECK_TIMEOUT_S)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:200]
        return "ok"

    async def _metrics(self) -> Response:
        # Merging the processes' files and asking Redis are blocking: keep them off the loop.
        body = await asyncio.to_thread(generate_latest, self.registry)
        return 200, CONTENT_TYPE_LATEST, body

    async def _sweep_forever(self) -> None:
        interval = self.worker_settings.sweep_interval_seconds
        while True:
            await asyncio.sleep(interval)
            if self.pool.draining:
                continue
            try:
                await self.sweep.sweep_once()
            except Exception as exc:
                log.warning("recovery sweep failed: %s: %s", type(exc).__name__, exc)

    def _cleanup_dirs(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)
