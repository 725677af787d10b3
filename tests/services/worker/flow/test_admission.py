"""Flow control on real worker processes: concurrency keys (with a SIGKILL), throttle, priority."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.flow.harness import (
    assert_one_at_a_time_in_order,
    flow_keys,
    holds,
    put_in_order,
)
from tests.services.worker.harness import (
    Queue,
    create_user,
    create_workflow,
    start_worker,
    wait_run,
    worker_env,
)
from tests.services.worker.test_processes import _pid_running

DELAY = [{"id": "wait", "type": "delay", "params": {"seconds": 0.3}}]


class TestConcurrency:
    async def test_one_run_per_key_at_a_time_in_arrival_order_keys_apart(
        self,
        db: AsyncEngine,
        own_worker: ServiceProcess,
        jobs: Queue,
        client: aioredis.Redis,
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), DELAY)
        flow = {"concurrency": {"limit": 1, "key": "{{ trigger.body.customer }}"}}
        a = await put_in_order(jobs, workflow, [{"customer": "a", "n": n} for n in range(4)], flow)
        b = await put_in_order(jobs, workflow, [{"customer": "b", "n": n} for n in range(2)], flow)

        runs = {run_id: await wait_run(db, run_id, timeout=30) for run_id in a + b}
        assert {run["status"] for run in runs.values()} == {"succeeded"}
        for group in (a, b):
            assert_one_at_a_time_in_order([runs[run_id] for run_id in group])
        # Held back, not merely lucky: the later runs of `a` were recorded as waiting for it.
        assert [runs[run_id]["waiting_reason"] for run_id in a[1:]] == ["concurrency_limit"] * 3
        # Another key's runs were not held behind `a`'s.
        assert runs[b[0]]["started_at"] < runs[a[-1]]["started_at"]
        assert await flow_keys(client, workflow) == {}
        assert await holds(client, a + b) == []

    async def test_a_killed_worker_gives_its_place_back_and_the_line_keeps_its_order(
        self,
        db: AsyncEngine,
        infra: Infra,
        own_worker: ServiceProcess,
        jobs: Queue,
        client: aioredis.Redis,
    ) -> None:
        nodes = [{"id": "wait", "type": "delay", "params": {"seconds": 1.5}}]
        workflow = await create_workflow(db, await create_user(db), nodes)
        flow = {"concurrency": {"limit": 1, "key": "full"}}
        ids = await put_in_order(jobs, workflow, [{"n": n} for n in range(4)], flow)
        await wait_run(db, ids[0], ("running",))
        await asyncio.sleep(0.3)  # the others have reached the worker and wait for the key
        os.kill(_pid_running(infra.redis_url, ids[0]), signal.SIGKILL)

        runs = [await wait_run(db, run_id, timeout=40) for run_id in ids]
        assert [run["status"] for run in runs] == ["succeeded"] * 4
        # The killed run was recovered (second delivery) and kept its place meanwhile.
        assert runs[0]["attempt"] == 2
        assert_one_at_a_time_in_order(runs)
        assert await flow_keys(client, workflow) == {}
        assert await holds(client, ids) == []


class TestThrottle:
    async def test_runs_beyond_the_limit_start_later_and_none_is_dropped(
        self, db: AsyncEngine, own_worker: ServiceProcess, jobs: Queue
    ) -> None:
        nodes = [{"id": "note", "type": "transform", "params": {"values": {"ok": True}}}]
        workflow = await create_workflow(db, await create_user(db), nodes)
        flow = {"throttle": {"limit": 2, "period_s": 2}}
        ids = await put_in_order(jobs, workflow, [{"n": n} for n in range(6)], flow, gap_s=0)

        runs = [await wait_run(db, run_id, timeout=30) for run_id in ids]
        assert [run["status"] for run in runs] == ["succeeded"] * 6
        starts = sorted(run["started_at"] for run in runs)
        # Two per 2 s: the third start is a period after the first, the fifth after the third
        # (less the scheduler's one-second granularity).
        for first, third in zip(starts, starts[2:], strict=False):
            assert (third - first).total_seconds() >= 0.9, starts
        assert (starts[-1] - starts[0]).total_seconds() >= 3.5, starts
        held = [run for run in runs if run["waiting_reason"] == "throttled"]
        assert len(held) >= 4, [run["waiting_reason"] for run in runs]


class TestPriority:
    async def test_high_runs_first_low_last_and_low_is_not_starved(
        self, db: AsyncEngine, infra: Infra, tmp_path: Path
    ) -> None:
        # One run at a time, so the order of starts is the order of dequeues.
        env = worker_env(infra.database_url, infra.redis_url, tmp_path / "data")
        jobs = Queue(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
        worker = start_worker(env, tmp_path / "logs", processes=1, concurrency=1)
        try:
            owner = await create_user(db)
            blocker = await create_workflow(
                db, owner, [{"id": "hold", "type": "delay", "params": {"seconds": 1.0}}]
            )
            quick = await create_workflow(
                db, owner, [{"id": "note", "type": "transform", "params": {"values": {}}}]
            )
            first = await put_in_order(jobs, blocker, [{}], {"priority": "normal"})
            await wait_run(db, first[0], ("running",))
            low = await put_in_order(jobs, quick, [{"p": "low"}] * 2, {"priority": "low"}, 0)
            normal = await put_in_order(jobs, quick, [{"p": "n"}] * 3, {"priority": "normal"}, 0)
            high = await put_in_order(jobs, quick, [{"p": "high"}] * 20, {"priority": "high"}, 0)

            async def start(run_id: str) -> float:
                return (await wait_run(db, run_id, timeout=30))["started_at"].timestamp()

            low_starts = [await start(run_id) for run_id in low]
            normal_starts = [await start(run_id) for run_id in normal]
            high_starts = [await start(run_id) for run_id in high]
        finally:
            stop_process(worker.proc, timeout=20)
            await jobs.close()
        order = sorted(
            [(t, "high") for t in high_starts]
            + [(t, "normal") for t in normal_starts]
            + [(t, "low") for t in low_starts]
        )
        kinds = [kind for _t, kind in order]
        # Of 16 dequeues 12 ask high first, 3 normal, 1 low (services/worker/flow/priority.py).
        assert kinds[0] == "high", kinds
        assert kinds[:16].count("high") >= 11, kinds
        assert max(normal_starts) < max(low_starts), kinds
        # 20 queued high runs cannot starve low: a low run starts before the last high one.
        assert min(low_starts) < max(high_starts), kinds
