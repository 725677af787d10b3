"""The run-data budget (issue 17 §4): a workflow that records a lot of step data a day grows
PostgreSQL by at most its budget plus a marker per step, while another workflow's runs beside it
are recorded unchanged. Scaled down for CI: a 200 kB budget and 80 kB runs instead of 1 MB runs
against the 256 MiB default."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import (
    Queue,
    create_user,
    create_workflow,
    run_job,
    start_worker,
    wait_run,
    worker_env,
)

BUDGET = 200_000
BLOB_CHARS = 40_000  # recorded twice per run: the rendered input and the output
HEAVY_RUNS = 30
# A marker is {"truncated": true, "reason": "run_data_budget", "size": N}: < 80 bytes.
MARKER_BYTES = 80


@pytest.fixture(scope="module")
def budget_env(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return worker_env(
        infra.database_url,
        infra.redis_url,
        tmp_path_factory.mktemp("budget-data"),
        AUTOMATEOS_RUN_DATA_BUDGET_BYTES_PER_DAY=str(BUDGET),
    )


@pytest.fixture(scope="module")
def budget_worker(
    budget_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    service = start_worker(budget_env, tmp_path_factory.mktemp("budget-logs"))
    yield service
    stop_process(service.proc, timeout=20)


async def recorded_bytes(db: AsyncEngine, workflow_id: object) -> int:
    """The bytes of step inputs and outputs recorded for the workflow's runs."""
    async with db.connect() as conn:
        value = await conn.scalar(
            text(
                "SELECT coalesce(sum(octet_length(coalesce(s.input::text, ''))"
                " + octet_length(coalesce(s.output::text, ''))), 0)"
                " FROM run_steps s JOIN workflow_runs r ON r.id = s.run_id WHERE r.workflow_id = :w"
            ),
            {"w": workflow_id},
        )
    return int(value or 0)


async def test_growth_is_bounded_by_the_budget_and_others_are_unaffected(
    db: AsyncEngine, infra: Infra, budget_env: dict[str, str], budget_worker: ServiceProcess
) -> None:
    owner = await create_user(db)
    heavy = await create_workflow(
        db, owner, [{"id": "big", "type": "log", "params": {"message": "{{ trigger.body.blob }}"}}]
    )
    normal = await create_workflow(
        db, owner, [{"id": "note", "type": "log", "params": {"message": "n={{ trigger.body.n }}"}}]
    )
    queue = Queue(infra.redis_url, budget_env["AUTOMATEOS_QUEUE_NAME"])
    async with db.connect() as conn:
        size_before = int(await conn.scalar(text("SELECT pg_total_relation_size('run_steps')")))
    try:
        heavy_runs, normal_runs = [], []
        for n in range(HEAVY_RUNS):
            # Incompressible, so PostgreSQL's own compression cannot hide the growth.
            blob = base64.b64encode(os.urandom(BLOB_CHARS * 3 // 4)).decode()
            heavy_runs.append(await queue.put(run_job(heavy, {"blob": blob})))
            if n % 3 == 0:
                normal_runs.append(await queue.put(run_job(normal, {"n": n})))
        for run_id in heavy_runs + normal_runs:
            run = await wait_run(db, run_id, timeout=60)
            assert run["status"] == "succeeded", run
    finally:
        await queue.close()

    recorded = await recorded_bytes(db, heavy.id)
    assert recorded <= BUDGET + HEAVY_RUNS * 2 * MARKER_BYTES, recorded
    # The first runs fit and were recorded whole: the budget is spent, not wasted.
    assert recorded >= BUDGET - 2 * (BLOB_CHARS + 100)
    async with db.connect() as conn:
        size_after = int(await conn.scalar(text("SELECT pg_total_relation_size('run_steps')")))
        markers = (
            (
                await conn.execute(
                    text(
                        "SELECT s.output FROM run_steps s JOIN workflow_runs r ON r.id = s.run_id"
                        " WHERE r.workflow_id = :w AND s.output ? 'truncated'"
                    ),
                    {"w": heavy.id},
                )
            )
            .scalars()
            .all()
        )
        normal_outputs = (
            (
                await conn.execute(
                    text(
                        "SELECT s.output FROM run_steps s JOIN workflow_runs r ON r.id = s.run_id"
                        " WHERE r.workflow_id = :w"
                    ),
                    {"w": normal.id},
                )
            )
            .scalars()
            .all()
        )
    # Unbounded, 30 runs would have added 2.4 MB; the table (with its TOAST and indexes)
    # grew by the budget plus row overhead.
    assert size_after - size_before <= BUDGET + 512 * 1024, size_after - size_before
    assert len(markers) >= HEAVY_RUNS - BUDGET // (2 * BLOB_CHARS)
    assert all(m["reason"] == "run_data_budget" and m["size"] > BLOB_CHARS for m in markers)
    # The normal workflow's runs are recorded as always.
    assert sorted(o["message"] for o in normal_outputs) == sorted(
        f"n={n}" for n in range(0, HEAVY_RUNS, 3)
    )
    metrics = httpx.get(f"{budget_worker.url}/metrics", timeout=10).text
    counted = re.search(r"^automateos_step_data_truncated_total (\S+)$", metrics, re.M)
    assert counted is not None
    assert float(counted.group(1)) >= len(markers)
