"""For-each steps: item order, concurrency, failures, the item cap, and pure-item speed."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.queue import CANCEL_CHANNEL
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    wait_run,
)


async def fetch_items(db: AsyncEngine, run_id: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM run_step_items WHERE run_id = :id ORDER BY position, item_index"),
            {"id": uuid.UUID(run_id)},
        )
        return [dict(row._mapping) for row in rows]


class TestForEach:
    async def test_items_run_at_most_concurrency_at_once_and_keep_their_order(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {
                "id": "ship",
                "type": "http_request",
                "for_each": "{{ trigger.body.orders }}",
                "concurrency": 2,
                # Later items answer sooner: the output order must still be the item order.
                "params": {
                    "url": api.url(
                        "/slow/fe-order?ms={{ 50 + (6 - item_index) * 20 }}&id={{ item.id }}"
                    )
                },
            },
            {
                "id": "ids",
                "type": "transform",
                "params": {"values": {"ids": "{{ steps.ship | map(attribute='body') | list }}"}},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        orders = [{"id": n} for n in range(7)]
        run = await wait_run(db, await queue.put(run_job(workflow, {"orders": orders})))
        assert run["status"] == "succeeded", run
        assert api.peak["/slow/fe-order"] == 2
        hits = api.hits_for("/slow/fe-order")
        assert sorted(int(h.query["id"][0]) for h in hits) == list(range(7))
        steps = await fetch_steps(db, str(run["id"]))
        assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
        assert steps[0]["input"] == {"for_each": 7, "concurrency": 2}
        assert [o["status"] for o in steps[0]["output"]] == [200] * 7
        assert [b["slept_ms"] for b in steps[1]["output"]["ids"]] == [
            50 + (6 - i) * 20 for i in range(7)
        ]
        items = await fetch_items(db, str(run["id"]))
        assert [(i["item_index"], i["status"]) for i in items] == [
            (n, "succeeded") for n in range(7)
        ]
        assert all(i["duration_ms"] is not None and i["started_at"] for i in items)
        assert all(i["resume_output"] is None for i in items)

    async def test_a_failing_item_fails_the_step_unless_continue_on_fail(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        def nodes(go_on: bool) -> list[dict[str, Any]]:
            return [
                {
                    "id": "call",
                    "type": "http_request",
                    "for_each": "{{ [200, 404, 200] }}",
                    "concurrency": 1,
                    "continue_on_fail": go_on,
                    "params": {"url": api.url("/status/{{ item }}")},
                },
                {"id": "after", "type": "transform", "params": {"values": {"n": 1}}},
            ]

        user = await create_user(db)
        stopped = await create_workflow(db, user, nodes(False))
        went_on = await create_workflow(db, user, nodes(True))
        run = await wait_run(db, await queue.put(run_job(stopped)))
        assert run["status"] == "failed"
        assert run["error"].startswith("node 'call' (http_request) failed: item 1 failed: ")
        steps = await fetch_steps(db, str(run["id"]))
        assert [s["status"] for s in steps] == ["failed", "skipped"]
        # One at a time: the item after the failure never started.
        assert [i["status"] for i in await fetch_items(db, str(run["id"]))] == [
            "succeeded",
            "failed",
        ]

        run = await wait_run(db, await queue.put(run_job(went_on)))
        assert run["status"] == "succeeded", run
        steps = await fetch_steps(db, str(run["id"]))
        assert [s["status"] for s in steps] == ["failed", "succeeded"]
        outputs = steps[0]["output"]
        assert [outputs[0]["status"], outputs[2]["status"]] == [200, 200]
        assert "404" in outputs[1]["error"]
        assert [i["status"] for i in await fetch_items(db, str(run["id"]))] == [
            "succeeded",
            "failed",
            "succeeded",
        ]

    async def test_more_than_ten_thousand_items_fail_the_step_clearly(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes = [
            {
                "id": "each",
                "type": "transform",
                "for_each": "{{ trigger.body.ids }}",
                "params": {"values": {"id": "{{ item }}"}},
            }
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow, {"ids": list(range(10_001))})))
        assert run["status"] == "failed"
        assert "for_each gave 10001 items; a step takes at most 10,000" in run["error"]
        assert await fetch_items(db, str(run["id"])) == []

    async def test_a_thousand_pure_items_take_under_two_seconds(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes = [
            {
                "id": "each",
                "type": "transform",
                "for_each": "{{ trigger.body.ids }}",
                "params": {"values": {"id": "{{ item }}", "at": "{{ item_index }}"}},
            },
            {
                "id": "count",
                "type": "transform",
                "params": {"values": {"n": "{{ steps.each | length }}"}},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        ids = [f"order-{n}" for n in range(1000)]
        run = await wait_run(db, await queue.put(run_job(workflow, {"ids": ids})))
        assert run["status"] == "succeeded", run
        assert run["duration_ms"] < 2000, run["duration_ms"]
        steps = await fetch_steps(db, str(run["id"]))
        assert steps[1]["output"] == {"n": 1000}
        items = await fetch_items(db, str(run["id"]))
        assert len(items) == 1000
        assert items[999]["output"] == {"id": "order-999", "at": 999}

    async def test_a_cancelled_run_starts_no_more_items(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {
                "id": "each",
                "type": "http_request",
                "for_each": "{{ range(40) | list }}",
                "concurrency": 2,
                "params": {"url": api.url("/slow/fe-cancel?ms=100&n={{ item }}")},
            }
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await queue.put(run_job(workflow))
        for _ in range(200):
            if len(api.hits_for("/slow/fe-cancel")) >= 4:
                break
            await asyncio.sleep(0.02)
        # As the API cancels: the row first, then the notice to the workers.
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE workflow_runs SET status = 'cancelled' WHERE id = :id"),
                {"id": uuid.UUID(run_id)},
            )
        await queue.client.publish(CANCEL_CHANNEL, run_id)
        steps: list[dict[str, Any]] = []
        for _ in range(250):
            steps = await fetch_steps(db, run_id)
            if steps and steps[0]["status"] != "running":
                break
            await asyncio.sleep(0.02)
        # The worker's record: the items in flight finished, no other started.
        assert steps[0]["status"] == "failed"
        assert steps[0]["error"].startswith("stopped after ")
        assert steps[0]["error"].endswith(" of 40 items: the run was cancelled")
        assert (await wait_run(db, run_id))["status"] == "cancelled"
        assert len(api.hits_for("/slow/fe-cancel")) < 20
