"""Step checkpoints: a worker killed mid-run never repeats a completed effectful step."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    start_worker,
    wait_run,
    worker_env,
)

# Short job heartbeats so a killed worker's jobs are re-queued within seconds.
FAST_RECOVERY = {
    "AUTOMATEOS_WORKER_JOB_HEARTBEAT_TTL_SECONDS": "3",
    "AUTOMATEOS_WORKER_JOB_HEARTBEAT_INTERVAL_SECONDS": "1",
}


@pytest.fixture
def env(infra: Infra, tmp_path: Path) -> dict[str, str]:
    return worker_env(infra.database_url, infra.redis_url, tmp_path / "data", **FAST_RECOVERY)


@pytest.fixture
def two_processes(env: dict[str, str], tmp_path: Path) -> Iterator[ServiceProcess]:
    service = start_worker(env, tmp_path / "logs", processes=2, concurrency=16)
    yield service
    stop_process(service.proc, timeout=30)


def _effects(api: LocalApi, tag: str) -> list[dict[str, Any]]:
    """Three effectful calls with pure steps between: the middle one is slow (killed there)."""
    return [
        {"id": "shape", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}},
        {
            "id": "charge",
            "type": "http_request",
            "params": {"method": "POST", "url": api.url(f"/charge/{tag}/{{{{ steps.shape.n }}}}")},
        },
        {"id": "ship", "type": "http_request", "params": {"url": api.url(f"/slow/{tag}?ms=2500")}},
        {
            "id": "notify",
            "type": "http_request",
            "params": {"method": "POST", "url": api.url(f"/notify/{tag}/{{{{ steps.shape.n }}}}")},
        },
    ]


def _worker_pids_running(redis_url: str, run_ids: list[str]) -> set[int]:
    connection = redis.Redis.from_url(redis_url)
    try:
        pids = set()
        for run_id in run_ids:
            job = Job.fetch(run_id, connection=connection, serializer=JSONSerializer)
            worker = Worker.find_by_key(f"rq:worker:{job.worker_name}", connection=connection)
            if worker is not None and worker.pid is not None:
                pids.add(int(worker.pid))
        return pids
    finally:
        connection.close()


class TestCheckpoints:
    async def test_finished_steps_show_while_the_run_is_still_running(
        self, db: AsyncEngine, api: LocalApi, two_processes: ServiceProcess, jobs: Queue
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), _effects(api, "live"))
        run_id = await jobs.put(run_job(workflow, {"n": 1}))
        await wait_run(db, run_id, ("running",))
        steps: list[dict[str, Any]] = []
        for _ in range(100):
            steps = await fetch_steps(db, run_id)
            if steps:
                break
            await asyncio.sleep(0.05)
        # The effectful `charge` and the pure step before it, written before `ship` started.
        assert [(s["node_id"], s["status"]) for s in steps] == [
            ("shape", "succeeded"),
            ("charge", "succeeded"),
        ]
        run = await wait_run(db, run_id)
        assert run["status"] == "succeeded"
        final = await fetch_steps(db, run_id)
        assert [s["status"] for s in final] == ["succeeded"] * 4
        # The resume copies of outputs are dropped once the run is finished.
        assert all(s["resume_output"] is None for s in final)

    async def test_sigkill_mid_run_repeats_no_completed_effect(
        self,
        db: AsyncEngine,
        infra: Infra,
        api: LocalApi,
        two_processes: ServiceProcess,
        jobs: Queue,
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), _effects(api, "kill"))
        run_ids = [await jobs.put(run_job(workflow, {"n": n})) for n in range(10)]
        # Every run is inside its slow `ship` call once `charge` is recorded for all of them.
        for _ in range(200):
            charged = len(api.hits_for_prefix("/charge/kill/"))
            if charged == 10:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        for pid in _worker_pids_running(infra.redis_url, run_ids):
            os.kill(pid, signal.SIGKILL)

        runs = [await wait_run(db, run_id, timeout=60) for run_id in run_ids]
        assert {run["status"] for run in runs} == {"succeeded"}, runs
        assert {run["attempt"] for run in runs} == {2}
        for n in range(10):
            # Completed before the kill: never again. After it: exactly once.
            assert len(api.hits_for(f"/charge/kill/{n}")) == 1
            assert len(api.hits_for(f"/notify/kill/{n}")) == 1
        # In flight at the kill: the one effect that may happen twice (at least once).
        assert len(api.hits_for("/slow/kill")) == 20
        for run_id in run_ids:
            steps = await fetch_steps(db, run_id)
            assert [(s["node_id"], s["status"]) for s in steps] == [
                ("shape", "succeeded"),
                ("charge", "succeeded"),
                ("ship", "succeeded"),
                ("notify", "succeeded"),
            ]
            # The reused record is the first delivery's: its attempt count stands.
            assert steps[1]["output"]["status"] == 200
