"""The supervisor: N worker processes, their probes and metrics, restarts, drain and recovery.

Kubernetes sends SIGTERM to this process only; it forwards it so every worker finishes its
current job and takes no new one, then exits once all have. Worker processes run in their own
session so a terminal's Ctrl-C reaches them once, through here, not twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis
import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import text

from services.worker.background import BackgroundJobs
from services.worker.collectors import ProcessView, QueueCollector, WorkerProcessCollector
from services.worker.config import WorkerSettings
from services.worker.probes import ProbeServer, Response
from services.worker.process import heartbeat_path
from services.worker.recovery import RecoverySweep
from services.worker.runtime import build_db_engine
from shared.settings import Settings

log = logging.getLogger(__name__)

_POLL_S = 0.2
_CHECK_TIMEOUT_S = 2.0
# A process that dies sooner than this after starting is crash-looping: back off.
_HEALTHY_AFTER_S = 10.0
_MAX_BACKOFF_S = 30.0


@dataclass
class Slot:
    """One worker process position; its process is replaced when it dies."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    start_after: float = 0.0


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
        self.log_level = log_level
        self.slots = [Slot(index) for index in range(processes)]
        self.draining = False
        self._wake = asyncio.Event()
        # Private per supervisor: stale files of an earlier run would corrupt the merged metrics.
        base = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        self.base_dir = Path(tempfile.mkdtemp(prefix="automateos-worker-", dir=base))
        self.metrics_dir = self.base_dir / "metrics"
        self.run_dir = self.base_dir / "run"
        self.metrics_dir.mkdir()
        self.run_dir.mkdir()
        self.db = build_db_engine(settings, pool_size=1, pre_ping=True)
        self.redis = aioredis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=_CHECK_TIMEOUT_S, socket_timeout=5
        )
        self._scrape_redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=1
        )
        self.registry = CollectorRegistry()
        # prometheus-client leaves these two untyped.
        MultiProcessCollector(self.registry, path=str(self.metrics_dir))  # type: ignore[no-untyped-call]
        self.registry.register(QueueCollector(self._scrape_redis, settings.queue_name))
        self.registry.register(WorkerProcessCollector(self._views))
        ProcessCollector(registry=self.registry)
        self.sweep = RecoverySweep(
            self.db,
            self.redis,
            settings.queue_name,
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
            loop.add_signal_handler(sig, self._on_signal, sig)
        log.info(
            "supervising %d worker processes on queue %s; probes on %s:%d",
            len(self.slots),
            self.settings.queue_name,
            self.host,
            self.port,
        )
        sweeper = asyncio.create_task(self._sweep_forever())
        background = BackgroundJobs(self.settings)
        background.start()
        try:
            await self._supervise()
        finally:
            await background.stop()
            sweeper.cancel()
            server.close()
            await server.wait_closed()
            await self.redis.aclose()
            self._scrape_redis.close()
            await self.db.dispose()
            self._cleanup_dirs()
        log.info("all worker processes stopped")
        return 0

    def _on_signal(self, sig: signal.Signals) -> None:
        if self.draining:
            log.warning("%s again: worker processes stop without finishing their job", sig.name)
        else:
            log.info("%s: draining (current jobs finish, no new ones start)", sig.name)
            self.draining = True
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(sig)
        self._wake.set()

    async def _supervise(self) -> None:
        while True:
            current = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._reap(slot, current)
                if slot.proc is None and not self.draining and current >= slot.start_after:
                    self._spawn(slot)
            if self.draining and all(slot.proc is None for slot in self.slots):
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)

    def _spawn(self, slot: Slot) -> None:
        heartbeat_path(self.run_dir, slot.index).unlink(missing_ok=True)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        command = [sys.executable, "-m", "services.worker.process"]
        command += ["--index", str(slot.index), "--run-dir", str(self.run_dir)]
        command += ["--log-level", self.log_level]
        slot.proc = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
        slot.started_at = time.monotonic()
        log.info("started worker process %d (pid %d)", slot.index, slot.proc.pid)

    def _reap(self, slot: Slot, current: float) -> None:
        assert slot.proc is not None
        code, pid = slot.proc.returncode, slot.proc.pid
        slot.proc = None
        # Its live gauges no longer count; its counters stay in the merged totals.
        mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        heartbeat_path(self.run_dir, slot.index).unlink(missing_ok=True)
        if self.draining:
            log.info("worker process %d (pid %d) stopped with %s", slot.index, pid, code)
            return
        lived = current - slot.started_at
        if lived >= _HEALTHY_AFTER_S:
            slot.backoff_s = 0.0
        else:
            slot.backoff_s = min(_MAX_BACKOFF_S, max(1.0, slot.backoff_s * 2))
        slot.start_after = current + slot.backoff_s
        slot.restarts += 1
        log.warning(
            "worker process %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
            slot.index,
            pid,
            code,
            lived,
            slot.backoff_s,
        )

    def _heartbeat_age(self, slot: Slot) -> float | None:
        try:
            return max(0.0, time.time() - heartbeat_path(self.run_dir, slot.index).stat().st_mtime)
        except FileNotFoundError:
            return None

    def _views(self) -> list[ProcessView]:
        views = []
        for slot in self.slots:
            age = self._heartbeat_age(slot)
            if age is None and slot.proc is not None:
                # Not one heartbeat yet: the age grows from its start, so a worker that never
                # comes up shows on dashboards instead of being absent.
                age = time.monotonic() - slot.started_at
            pid = slot.proc.pid if slot.proc is not None else None
            views.append(ProcessView(slot.index, pid, age, slot.restarts))
        return views

    async def _healthz(self) -> Response:
        return 200, "application/json", b'{"status":"ok"}'

    async def _readyz(self) -> Response:
        checks: dict[str, str] = {}
        if self.draining:
            checks["supervisor"] = "draining"
        limit = self.worker_settings.ready_max_heartbeat_age_seconds
        for slot in self.slots:
            age = self._heartbeat_age(slot)
            if slot.proc is None:
                state = "not running"
            elif age is None:
                state = "starting"
            elif age > limit:
                state = f"no heartbeat for {age:.1f}s"
            else:
                state = "ok"
            checks[f"worker-{slot.index}"] = state
        database, queue = await asyncio.gather(
            self._check(self._ping_database()), self._check(self.redis.ping())
        )
        checks["database"] = database
        checks["redis"] = queue
        ready = all(value == "ok" for value in checks.values())
        body = {"status": "ready" if ready else "unready", "checks": checks}
        return (200 if ready else 503), "application/json", orjson.dumps(body)

    async def _ping_database(self) -> None:
        async with self.db.connect() as conn:
            await conn.execute(text("SELECT 1"))

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
            if self.draining:
                continue
            try:
                await self.sweep.sweep_once()
            except Exception as exc:
                log.warning("recovery sweep failed: %s: %s", type(exc).__name__, exc)

    def _cleanup_dirs(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)
