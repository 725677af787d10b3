"""The worker as processes: recovery after a kill, restarts, graceful drain, honest readiness."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import RedisServer, stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import (
    Queue,
    create_user,
    create_workflow,
    fetch_run,
    fetch_steps,
    readyz,
    run_job,
    start_worker,
    wait_run,
    worker_env,
)

# Short job heartbeats so a killed worker's job is re-queued within seconds, not minutes.
FAST_RECOVERY = {
    "AUTOMATEOS_WORKER_JOB_HEARTBEAT_TTL_SECONDS": "4",
    "AUTOMATEOS_WORKER_JOB_HEARTBEAT_INTERVAL_SECONDS": "1",
    "AUTOMATEOS_WORKER_READY_MAX_HEARTBEAT_AGE_SECONDS": "3",
}


@pytest.fixture
def env(infra: Infra, tmp_path: Path) -> dict[str, str]:
    return worker_env(infra.database_url, infra.redis_url, tmp_path / "data", **FAST_RECOVERY)


@pytest.fixture
def own_worker(env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    """A one-process worker this test may kill, stop or starve."""
    service = start_worker(env, tmp_path / "logs", processes=1)
    yield service
    stop_process(service.proc, timeout=20)


def _worker_pids(redis_url: str, queue_name: str) -> list[int]:
    connection = redis.Redis.from_url(redis_url)
    try:
        workers = Worker.all(connection=connection)
        return sorted(
            int(w.pid) for w in workers if queue_name in w.queue_names() and w.pid is not None
        )
    finally:
        connection.close()


def _pid_running(redis_url: str, run_id: str) -> int:
    connection = redis.Redis.from_url(redis_url)
    try:
        job = Job.fetch(run_id, connection=connection, serializer=JSONSerializer)
        worker = Worker.find_by_key(f"rq:worker:{job.worker_name}", connection=connection)
        assert worker is not None
        assert worker.pid is not None
        return int(worker.pid)
    finally:
        connection.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its dead parent's reaper) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


async def _until(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


class TestRecovery:
    async def test_a_job_whose_worker_was_killed_is_rerun_and_recorded_once(
        self,
        db: AsyncEngine,
        infra: Infra,
        env: dict[str, str],
        own_worker: ServiceProcess,
        jobs: Queue,
    ) -> None:
        nodes = [
            {"id": "wait", "type": "delay", "params": {"seconds": 2}},
            {
                "id": "done",
                "type": "transform",
                "params": {"values": {"attempt": "{{ run.attempt }}"}},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await jobs.put(run_job(workflow))
        await wait_run(db, run_id, ("running",))
        os.kill(_pid_running(infra.redis_url, run_id), signal.SIGKILL)
        killed_at = time.monotonic()

        run = await wait_run(db, run_id, timeout=30)
        recovered_in = time.monotonic() - killed_at
        assert (run["status"], run["attempt"]) == ("succeeded", 2), run
        steps = await fetch_steps(db, run_id)
        assert [(s["node_id"], s["status"]) for s in steps] == [
            ("wait", "succeeded"),
            ("done", "succeeded"),
        ]
        assert steps[1]["output"] == {"attempt": 2}
        # Job heartbeat TTL 4 s + recovery pass 1 s + the rerun's 2 s delay, with slack.
        assert recovered_in < 15, recovered_in

    async def test_the_supervisor_restarts_a_dead_worker_process(
        self, infra: Infra, env: dict[str, str], own_worker: ServiceProcess
    ) -> None:
        [before] = _worker_pids(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
        os.kill(before, signal.SIGKILL)
        await _until(
            lambda: (
                _worker_pids(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"]) not in ([], [before])
            ),
            15,
            "no new worker process registered",
        )
        await _until(lambda: readyz(own_worker).status_code == 200, 15, "not ready again")
        metrics = httpx.get(f"{own_worker.url}/metrics", timeout=5).text
        assert 'automateos_worker_process_restarts_total{worker="0"} 1.0' in metrics


class TestShutdown:
    async def test_sigterm_finishes_the_current_job_and_takes_no_new_one(
        self, db: AsyncEngine, own_worker: ServiceProcess, jobs: Queue
    ) -> None:
        workflow = await create_workflow(
            db, await create_user(db), [{"id": "wait", "type": "delay", "params": {"seconds": 1.5}}]
        )
        current = await jobs.put(run_job(workflow))
        await wait_run(db, current, ("running",))
        own_worker.proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        later = await jobs.put(run_job(workflow))

        assert await asyncio.to_thread(own_worker.proc.wait, 20) == 0
        run = await fetch_run(db, current)
        assert run is not None
        assert run["status"] == "succeeded"
        assert await fetch_run(db, later) is None
        assert await jobs.length() == 1

    async def test_sigterm_drains_no_longer_than_the_grace_period_and_requeues_the_rest(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        env = {
            **env,
            "AUTOMATEOS_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
            "AUTOMATEOS_WORKER_PARK_AFTER_SECONDS": "120",
        }
        service = start_worker(env, tmp_path / "grace", processes=1)
        try:
            workflow = await create_workflow(
                db,
                await create_user(db),
                [{"id": "wait", "type": "delay", "params": {"seconds": 60}}],
            )
            run_id = await jobs.put(run_job(workflow))
            await wait_run(db, run_id, ("running",))
            service.proc.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            assert await asyncio.to_thread(service.proc.wait, 20) == 0
            assert time.monotonic() - stopped_at < 6
        finally:
            stop_process(service.proc, timeout=20)
        # Cut short, not lost: back on the queue for the next worker, no retry spent.
        assert await jobs.length() == 1
        connection = redis.Redis.from_url(env["REDIS_URL"])
        try:
            job = Job.fetch(run_id, connection=connection, serializer=JSONSerializer)
            assert (job.get_status(), job.retries_left) == ("queued", 3)
        finally:
            connection.close()

    async def test_ctrl_c_leaves_nothing_running_within_15_seconds(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        env = {**env, "AUTOMATEOS_WORKER_PARK_AFTER_SECONDS": "120"}
        service = start_worker(env, tmp_path / "ctrl-c", processes=2)
        pids = _worker_pids(env["REDIS_URL"], env["AUTOMATEOS_QUEUE_NAME"])
        try:
            workflow = await create_workflow(
                db,
                await create_user(db),
                [{"id": "wait", "type": "delay", "params": {"seconds": 60}}],
            )
            run_id = await jobs.put(run_job(workflow))
            await wait_run(db, run_id, ("running",))
            # A terminal's Ctrl-C reaches the supervisor (worker processes have their own
            # session, so the supervisor forwards it to them).
            service.proc.send_signal(signal.SIGINT)
            stopped_at = time.monotonic()
            await _until(
                lambda: service.proc.poll() is not None and not any(map(_alive, pids)),
                15,
                "a worker process still running",
            )
            assert time.monotonic() - stopped_at < 15
        finally:
            stop_process(service.proc, timeout=20)


class TestOrphans:
    async def test_a_worker_process_exits_within_seconds_of_its_supervisors_death(
        self, infra: Infra, env: dict[str, str], own_worker: ServiceProcess
    ) -> None:
        [pid] = _worker_pids(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
        own_worker.proc.kill()
        own_worker.proc.wait(5)
        killed_at = time.monotonic()
        await _until(lambda: not _alive(pid), 5, "worker process outlived its supervisor")
        assert time.monotonic() - killed_at < 3


class TestReadiness:
    async def test_ready_only_while_every_worker_process_heartbeats(
        self, infra: Infra, env: dict[str, str], own_worker: ServiceProcess
    ) -> None:
        assert readyz(own_worker).json()["checks"]["worker-0"] == "ok"
        [pid] = _worker_pids(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
        # A stopped process stands for one stuck on a dead connection: alive, never polling.
        os.kill(pid, signal.SIGSTOP)
        try:
            await _until(lambda: readyz(own_worker).status_code == 503, 10, "still ready")
            checks = readyz(own_worker).json()["checks"]
            assert re.fullmatch(r"no heartbeat for \d+\.\ds", checks["worker-0"])
            assert (checks["database"], checks["redis"]) == ("ok", "ok")
        finally:
            os.kill(pid, signal.SIGCONT)
        await _until(lambda: readyz(own_worker).status_code == 200, 10, "not ready again")

    async def test_unready_within_seconds_when_redis_stops(
        self, infra: Infra, tmp_path: Path
    ) -> None:
        redis_server = RedisServer(tmp_path / "redis", durable=False).start()
        env = worker_env(infra.database_url, redis_server.url, tmp_path / "data", **FAST_RECOVERY)
        service = start_worker(env, tmp_path / "logs", processes=1)
        try:
            redis_server.stop()
            stopped_at = time.monotonic()
            await _until(lambda: readyz(service).status_code == 503, 10, "still ready")
            assert time.monotonic() - stopped_at < 5
            assert readyz(service).json()["checks"]["redis"] != "ok"
            assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
        finally:
            stop_process(service.proc, timeout=20)
            redis_server.stop()
