"""Fair CPU on a real worker process: one user's heavy templates do not delay another's runs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.services.worker.harness import (
    Queue,
    Workflow,
    create_user,
    create_workflow,
    readyz,
    run_job,
    start_worker,
    wait_run,
)

# About 120,000 template loop iterations: roughly half a second of CPU per render here.
HEAVY = "{% for i in range(20000) %}{% for j in range(5) %}{% endfor %}{% endfor %}done"
TRIVIAL_RUNS = 31


async def _latencies(db: AsyncEngine, jobs: Queue, workflow: Workflow) -> list[float]:
    """Seconds from enqueueing to the recorded finish, for a burst of trivial runs."""
    sent: dict[str, float] = {}
    for n in range(TRIVIAL_RUNS):
        job = run_job(workflow, {"n": n})
        sent[job["run_id"]] = time.time()
        await jobs.put(job)
    runs = [await wait_run(db, run_id, timeout=60) for run_id in sent]
    assert {run["status"] for run in runs} == {"succeeded"}
    return sorted(run["finished_at"].timestamp() - sent[str(run["id"])] for run in runs)


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))]


async def test_a_run_spending_its_cpu_budget_does_not_delay_another_users_runs(
    db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
) -> None:
    worker = start_worker(
        {**env, "AUTOMATEOS_WORKER_RUN_CPU_BUDGET_SECONDS": "2"},
        tmp_path / "logs",
        processes=1,
        concurrency=32,
    )
    try:
        trivial = await create_workflow(
            db,
            await create_user(db),
            [{"id": "t", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}}],
        )
        heavy_nodes: list[dict[str, Any]] = [
            {"id": f"h{i}", "type": "transform", "params": {"values": {"x": HEAVY}}}
            for i in range(12)
        ]
        heavy = await create_workflow(db, await create_user(db), heavy_nodes)
        await _latencies(db, jobs, trivial)  # warm: connections, caches, the version
        alone = await _latencies(db, jobs, trivial)

        heavy_id = await jobs.put(run_job(heavy))
        await wait_run(db, heavy_id, statuses=("running",), timeout=30)
        await asyncio.sleep(0.3)  # inside its renders (the first has left the loop by now)
        beside = await _latencies(db, jobs, trivial)
        ready = readyz(worker).status_code

        heavy_run = await wait_run(db, heavy_id, timeout=60)
    finally:
        stop_process(worker.proc, timeout=30)

    assert heavy_run["status"] == "failed"
    assert "CPU budget of 2 s" in heavy_run["error"], heavy_run["error"]
    # Within 2 x their latency alone; a floor of 50 ms keeps a near-zero baseline from
    # turning scheduler noise into a failure (without slicing they waited ~0.5 s per render).
    assert _p99(beside) <= 2 * max(_p99(alone), 0.05), (alone, beside)
    assert ready == 200
