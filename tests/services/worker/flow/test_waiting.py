"""§2 proof: every run that is not running says why, with every worker stopped and after.

The package's worker is frozen (SIGSTOP of its supervisor and its process: the worker is still
registered in RQ, it just takes nothing), so no worker serves the queue. Within 10 s every
waiting run shows the right reason: a parked run `delay`, the runs behind a full concurrency key
`concurrency_limit` in order, a throttled run `throttled`, plain queued runs `queue` with the
depth ahead and then `no_worker`, and a run its dead worker left (RQ re-queued it) says it was
recovered. Once the worker is back, no run is queued without a reason, and every run finishes.
Reasons are read through the runs API's own read path (services/workflows/runs/service.py
`find`) on the real PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.worker.flow.census import WaitingCensus
from services.workflows.runs import service
from shared.flow import WAITING_REASONS
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.flow.harness import put_in_order, signal_tree
from tests.services.worker.harness import (
    Queue,
    Workflow,
    create_user,
    create_workflow,
    run_job,
    wait_run,
)

TERMINAL = {"succeeded", "failed", "cancelled"}
# The parked run waits this long in all (its first delivery parks it after 2 s).
# Long enough that the holder is still parked when every worker is frozen (a loaded machine
# can take seconds to get there), short enough to resume within the final wait.
PARK_S = 12.0


@pytest.fixture
def sessions(db: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(db, expire_on_commit=False)


async def _shown(
    sessions: async_sessionmaker[AsyncSession],
    client: aioredis.Redis,
    queue: str,
    owner: uuid.UUID,
    run_id: str,
) -> dict[str, Any]:
    async with sessions() as session:
        run = await service.find(session, client, owner, uuid.UUID(run_id), queue)
    return run.model_dump(mode="json")


async def _left_by_a_dead_worker(db: AsyncEngine, jobs: Queue, workflow: Workflow) -> str:
    """A run as RQ leaves it when its worker died: the row `running`, its job queued again."""
    job = run_job(workflow, {})
    async with db.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status,"
                " trigger, attempt, accepted_at, started_at) VALUES (:id, :w, :o, 1, 'running',"
                " '{}'::jsonb, 1, now() - interval '1 minute', now() - interval '1 minute')"
            ),
            {"id": uuid.UUID(job["run_id"]), "w": workflow.id, "o": workflow.owner_id},
        )
    return await jobs.put(job)


async def test_every_waiting_run_says_why_with_every_worker_stopped_and_after(
    db: AsyncEngine,
    own_worker: ServiceProcess,
    jobs: Queue,
    client: aioredis.Redis,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    owner = await create_user(db)
    slow = [{"id": "wait", "type": "delay", "params": {"seconds": "{{ trigger.body.s }}"}}]
    keyed = await create_workflow(db, owner, slow)
    quick = await create_workflow(
        db, owner, [{"id": "note", "type": "transform", "params": {"values": {}}}]
    )
    concurrency = {"concurrency": {"limit": 1, "key": "{{ trigger.body.k }}"}}
    holder, *line = await put_in_order(
        jobs,
        keyed,
        [{"k": "full", "s": PARK_S}, {"k": "full", "s": 0}, {"k": "full", "s": 0}],
        concurrency,
    )
    throttle = {"throttle": {"limit": 1, "period_s": 8}}
    first, throttled = await put_in_order(jobs, quick, [{}, {}], throttle)
    await wait_run(db, holder, ("waiting",))
    await wait_run(db, first)

    async def shown(run_id: str) -> dict[str, Any]:
        return await _shown(sessions, client, jobs.name, owner, run_id)

    end = time.monotonic() + 10
    while (await shown(throttled))["waiting_reason"] != "throttled" and time.monotonic() < end:
        await asyncio.sleep(0.1)

    signal_tree(own_worker.proc.pid, signal.SIGSTOP)
    try:
        stopped_at = time.monotonic()
        plain = await put_in_order(jobs, quick, [{}, {}, {}], {"priority": "normal"}, gap_s=0)
        recovered = await _left_by_a_dead_worker(db, jobs, quick)
        queued = [await shown(run_id) for run_id in plain]
        assert [(r["status"], r["waiting_reason"]) for r in queued] == [("queued", "queue")] * 3
        # A blocking pop the frozen worker sent before it froze may still take the first job
        # (Redis answers it; the frozen process does not read it): the rest wait in line.
        ahead = [r["waiting_detail"].get("ahead") for r in queued]
        assert ahead[1] in (0, 1), ahead
        assert ahead[2] == ahead[1] + 1, ahead

        deadline = stopped_at + 14
        while time.monotonic() < deadline:
            if (await shown(plain[1]))["waiting_reason"] == "no_worker":
                break
            await asyncio.sleep(0.25)
        # No worker has asked the queue for NO_WORKER_AFTER_S (10 s) while they waited.
        for run_id in plain:
            run = await shown(run_id)
            assert (run["status"], run["waiting_reason"]) == ("queued", "no_worker"), run
        again = await shown(recovered)
        assert (again["status"], again["waiting_reason"]) == ("queued", "no_worker"), again
        assert again["waiting_detail"]["recovered"] is True, again
        parked = await shown(holder)
        assert (parked["status"], parked["waiting_reason"]) == ("waiting", "delay"), parked
        assert parked["waiting_detail"]["resume_at"]
        behind = [await shown(run_id) for run_id in line]
        assert [(r["status"], r["waiting_reason"]) for r in behind] == [
            ("queued", "concurrency_limit")
        ] * 2
        assert [r["waiting_detail"]["ahead"] for r in behind] == [0, 1]
        assert {r["waiting_detail"]["key"] for r in behind} == {"full"}
        held = await shown(throttled)
        assert (held["status"], held["waiting_reason"]) == ("queued", "throttled"), held
        assert held["waiting_detail"]["resume_at"]

        # The metric counts them by reason (the database is shared: at least ours).
        counts = await WaitingCensus(db, client, jobs.name, 15).count_once()
        assert counts["no_worker"] >= 2, counts
        assert counts["queue"] == 0, counts  # this queue's jobs: nobody takes them
        assert counts["concurrency_limit"] >= 2, counts
        assert counts["throttled"] >= 1, counts
        assert counts["delay"] >= 1, counts
        assert set(counts) == set(WAITING_REASONS)
    finally:
        signal_tree(own_worker.proc.pid, signal.SIGCONT)

    every = [holder, *line, first, throttled, *plain, recovered]
    end = time.monotonic() + 30
    pending = list(every)
    while pending and time.monotonic() < end:
        for run_id in list(pending):
            run = await shown(run_id)
            if run["status"] in TERMINAL:
                pending.remove(run_id)
            elif run["status"] in ("queued", "waiting"):
                assert run["waiting_reason"] in WAITING_REASONS, run
        await asyncio.sleep(0.2)
    assert pending == [], [await shown(run_id) for run_id in pending]
    assert {(await shown(run_id))["status"] for run_id in every} == {"succeeded"}
    metrics = httpx.get(f"{own_worker.url}/metrics", timeout=5).text
    for reason in WAITING_REASONS:
        assert f'automateos_runs_waiting{{reason="{reason}"}}' in metrics
