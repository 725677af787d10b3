"""Child runs and error workflows against a real worker: slots, redeliveries, exactly once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from services.worker.engine import repository
from services.worker.engine.error_workflows import error_run_id
from tests.fixtures.servers import Infra
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_run,
    fetch_steps,
    run_job,
    start_worker,
    wait_job_gone,
    wait_run,
)


async def _error_runs(db: AsyncEngine, failed_run_id: str) -> list[dict[str, object]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT id, status FROM workflow_runs WHERE error_of = :id"),
            {"id": uuid.UUID(failed_run_id)},
        )
        return [dict(row._mapping) for row in rows]


class TestChildSlots:
    async def test_a_waiting_parent_holds_no_slot_its_child_needs(
        self, db: AsyncEngine, env: dict[str, str], tmp_path: Path, jobs: Queue
    ) -> None:
        # One process with one slot: the child can only run if the parked parent freed it.
        worker = start_worker(env, tmp_path / "logs", processes=1, concurrency=1)
        try:
            owner = await create_user(db)
            child = await create_workflow(
                db,
                owner,
                [
                    {
                        "id": "add",
                        "type": "transform",
                        "params": {"values": {"n": "{{ trigger.body.n + 1 }}"}},
                    }
                ],
            )
            parent = await create_workflow(
                db,
                owner,
                [
                    {
                        "id": "call",
                        "type": "call_workflow",
                        "params": {
                            "workflow": str(child.id),
                            "input": {"n": "{{ trigger.body.n }}"},
                        },
                    }
                ],
            )
            run_id = await jobs.put(run_job(parent, {"n": 1}))
            run = await wait_run(db, run_id, timeout=30)
            assert run["status"] == "succeeded", run
            [call] = await fetch_steps(db, run_id)
            child_run_id = call["output"]["run_id"]
            assert call["output"] == {
                "run_id": child_run_id,
                "status": "succeeded",
                "output": {"n": 2},
            }
            child_run = await fetch_run(db, child_run_id)
            assert child_run is not None
            assert child_run["parent_run_id"] == uuid.UUID(run_id)
            assert child_run["parent_step"] == 0
            assert child_run["depth"] == 1
            # The parent parked (a continuation resumed it), it did not wait in its slot.
            assert run["attempt"] >= 2
        finally:
            stop_process(worker.proc, timeout=20)


class TestErrorWorkflowExactlyOnce:
    async def test_a_crash_between_the_failure_and_the_enqueue_still_starts_it_once(
        self, db: AsyncEngine, queue: Queue, infra: Infra, api: LocalApi
    ) -> None:
        owner = await create_user(db)
        handler = await create_workflow(
            db,
            owner,
            [
                {
                    "id": "got",
                    "type": "transform",
                    "params": {"values": {"body": "{{ trigger.body }}"}},
                }
            ],
        )
        failing = await create_workflow(
            db,
            owner,
            [{"id": "boom", "type": "http_request", "params": {"url": api.url("/status/500")}}],
        )
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE workflows SET on_error = :handler WHERE id = :id"),
                {"handler": str(handler.id), "id": failing.id},
            )
        job = run_job(failing)
        run_id = uuid.UUID(job["run_id"])
        now = datetime.now(UTC)
        # What a worker that died right after recording the failure leaves: the run failed
        # (and its error run queued, by the same statement), nothing on the queue for it.
        async with db.begin() as conn:
            started = await repository.start_run(
                conn,
                {
                    "id": run_id,
                    "workflow_id": failing.id,
                    "owner_id": owner,
                    "workflow_version": 1,
                    "trigger": job["trigger"],
                    "idempotency_key": None,
                    "retry_of": None,
                    "accepted_at": now,
                    "started_at": now,
                },
            )
            assert isinstance(started, repository.StartedRun)
            applied = await repository.finish_run(
                conn,
                repository.finish_values(
                    run_id=run_id,
                    attempt=started.attempt,
                    status="failed",
                    error="node 'boom' (http_request) failed: 500",
                    finished_at=now,
                    duration_ms=5,
                    steps=[],
                    failed_step="boom",
                ),
            )
            assert applied
        [pending] = await _error_runs(db, job["run_id"])
        assert pending == {"id": error_run_id(run_id), "status": "queued"}

        # RQ delivers the dead worker's job again (three times, for good measure).
        for _ in range(3):
            await queue.put(job)
            await wait_job_gone(infra.redis_url, job["run_id"])
        error_run = await wait_run(db, str(error_run_id(run_id)))
        assert error_run["status"] == "succeeded", error_run
        assert error_run["workflow_id"] == handler.id
        assert error_run["trigger"]["body"] == {
            "run_id": job["run_id"],
            "workflow_id": str(failing.id),
            "workflow_name": "test",
            "failed_step": "boom",
            "error": "node 'boom' (http_request) failed: 500",
            "attempt": 1,
        }
        await asyncio.sleep(0.5)
        assert len(await _error_runs(db, job["run_id"])) == 1
        run = await fetch_run(db, job["run_id"])
        assert run is not None
        assert run["status"] == "failed"


class TestChildExactlyOnce:
    async def test_redelivered_parent_jobs_start_one_child(
        self, db: AsyncEngine, queue: Queue, infra: Infra, api: LocalApi
    ) -> None:
        owner = await create_user(db)
        path = f"/child-effect/{uuid.uuid4().hex[:8]}"
        child = await create_workflow(
            db,
            owner,
            [
                {
                    "id": "effect",
                    "type": "http_request",
                    "params": {"method": "POST", "url": api.url(path)},
                }
            ],
        )
        parent = await create_workflow(
            db,
            owner,
            [
                {
                    "id": "fire",
                    "type": "call_workflow",
                    "params": {"workflow": str(child.id), "wait": False},
                }
            ],
        )
        job = run_job(parent)
        # The same job delivered again while (or after) the first delivery runs: a worker
        # death makes RQ do exactly this.
        for _ in range(3):
            await queue.put(job)
        run = await wait_run(db, job["run_id"])
        assert run["status"] == "succeeded", run
        for _ in range(3):
            await wait_job_gone(infra.redis_url, job["run_id"])
        async with db.connect() as conn:
            children = (
                await conn.execute(
                    text("SELECT id FROM workflow_runs WHERE parent_run_id = :id"),
                    {"id": uuid.UUID(job["run_id"])},
                )
            ).all()
        assert len(children) == 1
        child_run = await wait_run(db, str(children[0].id))
        assert child_run["status"] == "succeeded"
        await asyncio.sleep(0.5)
        assert len(api.hits_for(path)) == 1
