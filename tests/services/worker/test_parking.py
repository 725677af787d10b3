"""Durable waits: a long delay parks the run, frees its slot, and resumes on any worker in time."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from rq.worker import Worker
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import RedisServer, stop_process
from shared.hooks import callback_key
from shared.waits import CALLBACK_CLOSED_TTL_S, CALLBACK_PARK_SLACK_S
from tests.fixtures.servers import Infra
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


def _delayed(seconds: float) -> list[dict[str, Any]]:
    return [
        {"id": "before", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}},
        {"id": "wait", "type": "delay", "params": {"seconds": seconds}},
        {
            "id": "after",
            "type": "transform",
            "params": {"values": {"n": "{{ steps.before.n }}", "waited": "{{ steps.wait }}"}},
        },
    ]


def _worker_pids(redis_url: str, queue_name: str) -> list[int]:
    connection = redis.Redis.from_url(redis_url)
    try:
        workers = Worker.all(connection=connection)
        return [int(w.pid) for w in workers if queue_name in w.queue_names() and w.pid]
    finally:
        connection.close()


class TestParking:
    async def test_a_long_delay_parks_frees_its_slot_and_resumes_on_time(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, api: LocalApi, jobs: Queue
    ) -> None:
        # One process, one slot: the quick run can only go while the parked one holds none.
        worker = start_worker(env, tmp_path / "logs", processes=1, concurrency=1)
        try:
            owner = await create_user(db)
            parked_flow = await create_workflow(db, owner, _delayed(6))
            quick_flow = await create_workflow(
                db, owner, [{"id": "t", "type": "transform", "params": {"values": {"a": 1}}}]
            )
            parked = await jobs.put(run_job(parked_flow, {"n": 7}))
            waiting = await wait_run(db, parked, ("waiting",))
            resume_at = waiting["resume_at"]
            assert 5 < (resume_at - datetime.now(UTC)).total_seconds() <= 6.5
            steps = await fetch_steps(db, parked)
            assert [(s["node_id"], s["status"]) for s in steps] == [
                ("before", "succeeded"),
                ("wait", "waiting"),
            ]
            assert steps[1]["output"]["resume_at"]

            quick = await jobs.put(run_job(quick_flow))
            assert (await wait_run(db, quick, timeout=3))["status"] == "succeeded"

            done = await wait_run(db, parked, timeout=15)
            assert done["status"] == "succeeded"
            late = (done["finished_at"] - resume_at).total_seconds()
            assert -0.1 < late < 2.0, late
            after = (await fetch_steps(db, parked))[2]
            assert after["output"] == {"n": 7, "waited": {"waited_s": 6}}
        finally:
            stop_process(worker.proc, timeout=20)

    async def test_a_parked_run_survives_its_worker_and_resumes_on_another(
        self, db: AsyncEngine, infra: Infra, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        first = start_worker(env, tmp_path / "first", processes=1)
        workflow = await create_workflow(db, await create_user(db), _delayed(6))
        run_id = await jobs.put(run_job(workflow, {"n": 1}))
        await wait_run(db, run_id, ("waiting",))
        # The whole worker dies (supervisor and processes); nothing holds the run.
        for pid in _worker_pids(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"]):
            os.kill(pid, signal.SIGKILL)
        first.proc.kill()
        first.proc.wait(10)
        second = start_worker(env, tmp_path / "second", processes=1)
        try:
            run = await wait_run(db, run_id, timeout=20)
            assert run["status"] == "succeeded"
            assert run["attempt"] == 2
        finally:
            stop_process(second.proc, timeout=20)

    async def test_a_parked_run_survives_a_redis_crash_with_its_append_only_file(
        self, db: AsyncEngine, infra: Infra, tmp_path: Path
    ) -> None:
        # Redis as `make up` and the chart's dev Redis run it: appendonly, fsync every second.
        redis_server = RedisServer(tmp_path / "redis", durable=True).start()
        env = worker_env(infra.database_url, redis_server.url, tmp_path / "data")
        worker = start_worker(env, tmp_path / "logs", processes=1)
        queue = Queue(redis_server.url, env["AUTOMATEOS_QUEUE_NAME"])
        try:
            workflow = await create_workflow(db, await create_user(db), _delayed(7))
            run_id = await queue.put(run_job(workflow, {"n": 3}))
            await wait_run(db, run_id, ("waiting",))
            await asyncio.sleep(1.5)  # past the append-only file's fsync
            assert redis_server.proc is not None
            redis_server.proc.kill()
            redis_server.proc.wait(10)
            redis_server.start()  # same port, same folder
            run = await wait_run(db, run_id, timeout=30)
            assert run["status"] == "succeeded"
        finally:
            await queue.close()
            stop_process(worker.proc, timeout=20)
            redis_server.stop()

    async def test_forty_five_second_delays_wait_side_by_side(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        worker = start_worker(env, tmp_path / "logs", processes=2)
        try:
            workflow = await create_workflow(db, await create_user(db), _delayed(5))
            started = asyncio.get_running_loop().time()
            run_ids = [await jobs.put(run_job(workflow, {"n": n})) for n in range(40)]
            runs = [await wait_run(db, run_id, timeout=30) for run_id in run_ids]
            assert {run["status"] for run in runs} == {"succeeded"}
            # 40 slots' worth of waiting at once, not 40 waits one after another.
            assert asyncio.get_running_loop().time() - started < 20
        finally:
            stop_process(worker.proc, timeout=20)


class TestCallbacks:
    async def test_a_callback_that_came_before_the_park_is_taken_at_once(
        self, db: AsyncEngine, infra: Infra, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        worker = start_worker(env, tmp_path / "logs", processes=1)
        client = aioredis.Redis.from_url(infra.redis_url)
        try:
            nodes = [{"id": "approval", "type": "wait_for_callback", "params": {"timeout_s": 60}}]
            workflow = await create_workflow(db, await create_user(db), nodes)
            job = run_job(workflow)
            # What ingest stores for a callback whose run has not parked yet.
            body = f'B:{workflow.owner_id}{{"approved": true}}'
            await client.set(callback_key(job["run_id"]), body.encode())
            await jobs.put(job)
            run = await wait_run(db, job["run_id"], timeout=10)
            assert run["status"] == "succeeded"
            [step] = await fetch_steps(db, job["run_id"])
            assert step["output"] == {"approved": True}
            assert await client.get(callback_key(job["run_id"])) == b"C"
            # Closed for a day (a second POST is a 409), not for the longest wait.
            assert 0 < await client.ttl(callback_key(job["run_id"])) <= CALLBACK_CLOSED_TTL_S
        finally:
            await client.aclose()
            stop_process(worker.proc, timeout=20)

    async def test_a_callback_wait_that_times_out_fails_its_step(
        self, db: AsyncEngine, infra: Infra, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        worker = start_worker(env, tmp_path / "logs", processes=1)
        client = aioredis.Redis.from_url(infra.redis_url)
        try:
            nodes = [
                {"id": "approval", "type": "wait_for_callback", "params": {"timeout_s": 6}},
                {"id": "next", "type": "transform", "params": {"values": {"a": 1}}},
            ]
            workflow = await create_workflow(db, await create_user(db), nodes)
            run_id = await jobs.put(run_job(workflow))
            await wait_run(db, run_id, ("waiting",))
            # Its resume time is in PostgreSQL only: nothing waits in RQ's scheduled registry.
            assert await client.zcard(f"rq:scheduled:{env['AUTOMATEOS_QUEUE_NAME']}") == 0
            # Parked: the key names the owner and lives as long as the wait, plus slack.
            key = callback_key(run_id)
            assert await client.get(key) == f"W:{workflow.owner_id}:0".encode()
            assert 0 < await client.ttl(key) <= 6 + CALLBACK_PARK_SLACK_S
            run = await wait_run(db, run_id, timeout=15)
            assert run["status"] == "failed"
            # The run ended: the key is closed, so no callback is stored for it any more.
            assert await client.get(key) == b"C"
            assert (
                run["error"] == "node 'approval' (wait_for_callback) failed: no callback within 6s"
            )
            assert [s["status"] for s in await fetch_steps(db, run_id)] == ["failed", "skipped"]
        finally:
            await client.aclose()
            stop_process(worker.proc, timeout=20)
