"""Many runs at once in one worker process: overlap, backpressure, RQ's registries, drain."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq.registry import StartedJobRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.conftest import log_text
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    readyz,
    run_job,
    start_worker,
    wait_run,
)


@pytest.fixture
def one_process(env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    """One worker process running up to 8 runs at once."""
    service = start_worker(env, tmp_path / "logs", processes=1, concurrency=8)
    yield service
    stop_process(service.proc, timeout=30)


def _slow_call(api: LocalApi, name: str, ms: int) -> list[dict[str, object]]:
    return [
        {
            "id": "call",
            "type": "http_request",
            "params": {"url": api.url(f"/slow/{name}?ms={ms}")},
        },
        {
            "id": "shape",
            "type": "transform",
            "params": {"values": {"ok": "{{ steps.call.status }}"}},
        },
    ]


def _started(redis_url: str, queue_name: str) -> int:
    connection = redis.Redis.from_url(redis_url)
    try:
        return len(StartedJobRegistry(queue_name, connection=connection).get_job_ids())
    finally:
        connection.close()


class TestConcurrency:
    async def test_runs_waiting_on_io_overlap_up_to_the_concurrency(
        self, db: AsyncEngine, api: LocalApi, one_process: ServiceProcess, jobs: Queue
    ) -> None:
        workflow = await create_workflow(
            db, await create_user(db), _slow_call(api, "overlap", 1500)
        )
        run_ids = [await jobs.put(run_job(workflow)) for _ in range(12)]
        runs = [await wait_run(db, run_id, timeout=60) for run_id in run_ids]
        assert {run["status"] for run in runs} == {"succeeded"}
        # One process, yet its runs waited on the API together, never more than its slots.
        assert api.peak["/slow/overlap"] == 8

    async def test_jobs_stay_queued_while_every_slot_is_busy(
        self,
        db: AsyncEngine,
        infra: Infra,
        env: dict[str, str],
        api: LocalApi,
        one_process: ServiceProcess,
        jobs: Queue,
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), _slow_call(api, "full", 3000))
        run_ids = [await jobs.put(run_job(workflow)) for _ in range(11)]
        await wait_run(db, run_ids[0], ("running",))
        await asyncio.sleep(0.5)
        # Backpressure: 8 taken (each with its entry in RQ's started registry), 3 left queued
        # for another worker to take.
        assert _started(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"]) == 8
        assert await jobs.length() == 3
        metrics = httpx.get(f"{one_process.url}/metrics", timeout=5).text
        assert 'automateos_worker_runs_in_flight{worker="0"} 8.0' in metrics
        assert 'automateos_worker_free_slots{worker="0"} 0.0' in metrics
        assert readyz(one_process).status_code == 200
        for run_id in run_ids:
            assert (await wait_run(db, run_id, timeout=60))["status"] == "succeeded"
        assert _started(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"]) == 0

    async def test_sigterm_drains_every_run_in_flight(
        self, db: AsyncEngine, api: LocalApi, one_process: ServiceProcess, jobs: Queue
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), _slow_call(api, "drain", 2000))
        run_ids = [await jobs.put(run_job(workflow)) for _ in range(6)]
        for run_id in run_ids:
            await wait_run(db, run_id, ("running",))
        one_process.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        later = await jobs.put(run_job(workflow))
        assert await asyncio.to_thread(one_process.proc.wait, 30) == 0
        for run_id in run_ids:
            assert (await wait_run(db, run_id, timeout=1))["status"] == "succeeded"
        # Taken by no one: still on the queue for the next worker.
        assert await jobs.length() == 1
        assert later


class TestBlockingPlugins:
    async def test_a_blocking_step_runs_off_the_loop_and_its_timeout_holds(
        self, db: AsyncEngine, api: LocalApi, one_process: ServiceProcess, jobs: Queue
    ) -> None:
        # `tests/plugins/sleepy.py` sleeps synchronously: declared blocking, it runs in a
        # thread, so the quick runs beside it are not held up and its timeout fails it.
        workflow = await create_workflow(
            db,
            await create_user(db),
            [{"id": "nap", "type": "test_sleepy", "timeout_s": 0.5, "params": {"seconds": 3}}],
        )
        quick = await create_workflow(db, await create_user(db), _slow_call(api, "beside", 50))
        blocked = await jobs.put(run_job(workflow))
        await wait_run(db, blocked, ("running",))
        fast = [await jobs.put(run_job(quick)) for _ in range(3)]
        for run_id in fast:
            assert (await wait_run(db, run_id, timeout=2.5))["status"] == "succeeded"
        run = await wait_run(db, blocked, timeout=10)
        assert run["status"] == "failed"
        assert "timed out after 0.5s" in run["error"]


class TestWatchdog:
    async def test_a_stalled_loop_is_reported_and_the_process_goes_unready(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        env = {**env, "AUTOMATEOS_WORKER_READY_MAX_HEARTBEAT_AGE_SECONDS": "3"}
        one_process = start_worker(env, tmp_path / "watchdog", processes=1)
        try:
            await self._stall(db, one_process, jobs)
        finally:
            stop_process(one_process.proc, timeout=30)

    async def _stall(self, db: AsyncEngine, one_process: ServiceProcess, jobs: Queue) -> None:
        # Stalled after 2 s, heartbeat older than 3 s a second later: unready well within 8 s.
        nodes = [{"id": "stuck", "type": "test_hog", "params": {"seconds": 8}}]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await jobs.put(run_job(workflow))
        await wait_run(db, run_id, ("running",))
        unready = False
        for _ in range(80):
            if readyz(one_process).status_code == 503:
                unready = True
                break
            await asyncio.sleep(0.1)
        assert unready, "still ready while the loop was stuck"
        assert (await wait_run(db, run_id, timeout=20))["status"] == "succeeded"
        log = log_text(one_process)
        assert "engine loop stalled" in log
        assert "node 'stuck' (test_hog) ran inline" in log
        metrics = httpx.get(f"{one_process.url}/metrics", timeout=5).text
        assert "automateos_worker_loop_stalls_total 1.0" in metrics
        for _ in range(100):
            if readyz(one_process).status_code == 200:
                break
            await asyncio.sleep(0.1)
        assert readyz(one_process).status_code == 200
