"""The last effectful step's record rides with the final write, within a deadline (deferred.py).

Writes are counted by a PostgreSQL trigger on `run_steps`: a checkpointed step's row is written
twice (the checkpoint, then the final write), a deferred one once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_run,
    fetch_steps,
    run_job,
    wait_run,
)

# Renders for far longer than the deadline (fair CPU moves it to a render process), within the
# sandbox's million loop iterations.
SLOW_TEMPLATE = "{% for i in range(60) %}{% for j in range(10000) %}{% endfor %}{% endfor %}done"


@pytest.fixture
async def step_writes(db: AsyncEngine) -> AsyncIterator[str]:
    """A table the trigger fills with (run id, node id) per INSERT or UPDATE of a step row."""
    table = f"step_writes_{uuid.uuid4().hex[:8]}"
    async with db.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {table} (run_id uuid, node_id text)"))
        await conn.execute(
            text(
                f"CREATE FUNCTION {table}_count() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                f" INSERT INTO {table} VALUES (NEW.run_id, NEW.node_id); RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER {table} AFTER INSERT OR UPDATE ON run_steps"
                f" FOR EACH ROW EXECUTE FUNCTION {table}_count()"
            )
        )
    try:
        yield table
    finally:
        async with db.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER {table} ON run_steps"))
            await conn.execute(text(f"DROP FUNCTION {table}_count()"))
            await conn.execute(text(f"DROP TABLE {table}"))


async def _writes(db: AsyncEngine, table: str, run_id: str) -> Counter[str]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT node_id FROM {table} WHERE run_id = :id"), {"id": uuid.UUID(run_id)}
        )
        return Counter(row.node_id for row in rows)


async def _start(db: AsyncEngine, queue: Queue, nodes: list[dict[str, Any]]) -> str:
    workflow = await create_workflow(db, await create_user(db), nodes)
    return await queue.put(run_job(workflow, {}))


async def _writes_of_a_run(
    db: AsyncEngine, queue: Queue, table: str, nodes: list[dict[str, Any]]
) -> tuple[str, Counter[str]]:
    """Run `nodes` to success: its id, and how many times each step's row was written."""
    run_id = await _start(db, queue, nodes)
    run = await wait_run(db, run_id)
    assert run["status"] == "succeeded", run["error"]
    return run_id, await _writes(db, table, run_id)


async def test_only_the_last_effectful_step_waits_for_the_final_write(
    db: AsyncEngine, queue: Queue, api: LocalApi, step_writes: str
) -> None:
    nodes = [
        {"id": "first", "type": "http_request", "params": {"url": api.url("/echo/one")}},
        {"id": "second", "type": "http_request", "params": {"url": api.url("/echo/two")}},
        {"id": "shape", "type": "transform", "params": {"values": {"s": "{{ 1 + 1 }}"}}},
    ]
    # `first` is checkpointed before `second` starts; `second`, followed only by a transform,
    # is written once, by the final write, as is the pure step.
    run_id, writes = await _writes_of_a_run(db, queue, step_writes, nodes)
    assert writes == {"first": 2, "second": 1, "shape": 1}
    steps = {step["node_id"]: step for step in await fetch_steps(db, run_id)}
    assert steps["second"]["status"] == "succeeded"
    assert steps["second"]["output"]["status"] == 200


async def test_a_step_that_waits_after_the_call_leaves_it_checkpointed(
    db: AsyncEngine, queue: Queue, api: LocalApi, step_writes: str
) -> None:
    nodes = [
        {"id": "call", "type": "http_request", "params": {"url": api.url("/echo/call")}},
        {"id": "pause", "type": "delay", "params": {"seconds": 0.1}},
    ]
    _, writes = await _writes_of_a_run(db, queue, step_writes, nodes)
    assert writes == {"call": 2, "pause": 1}


async def test_a_slow_step_after_the_call_does_not_leave_it_unrecorded(
    db: AsyncEngine, queue: Queue, api: LocalApi, step_writes: str
) -> None:
    run_id = await _start(
        db,
        queue,
        [
            {"id": "call", "type": "http_request", "params": {"url": api.url("/echo/slow-after")}},
            {"id": "heavy", "type": "transform", "params": {"values": {"s": SLOW_TEMPLATE}}},
        ],
    )
    # While `heavy` renders, the deadline writes `call` as a checkpoint of its own.
    end = time.monotonic() + 15
    seen_while_running = False
    while time.monotonic() < end:
        # Steps first, then the run: a run still `running` after the read was running during it.
        recorded = {step["node_id"]: step for step in await fetch_steps(db, run_id)}
        run = await fetch_run(db, run_id)
        if run is not None and run["status"] not in ("running", "queued"):
            break
        if run is not None and run["status"] == "running" and "call" in recorded:
            assert recorded["call"]["status"] == "succeeded"
            seen_while_running = True
        await asyncio.sleep(0.02)
    run = await wait_run(db, run_id)
    assert run["status"] == "succeeded", run["error"]
    assert seen_while_running, "the call's record waited for the end of the run"
    assert await _writes(db, step_writes, run_id) == {"call": 2, "heavy": 1}
