"""Conditional steps: `if` on any node, and `switch` choosing the branch later `if`s read."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    wait_run,
)

BODY = "{{ trigger.body }}"
SIZE = "{{ steps.size.value }}"


def _route_orders(api: LocalApi, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "size",
            "type": "switch",
            "params": {
                "cases": [
                    {"when": "{{ trigger.body.amount >= 1000 }}", "value": "big"},
                    {"when": "{{ trigger.body.amount >= 100 }}", "value": "medium"},
                ],
                "default": "small",
            },
        },
        {
            "id": "big_orders",
            "type": "http_request",
            "if": "{{ steps.size.value == 'big' }}",
            "params": {
                "method": "POST",
                "url": api.url(f"/big/{tag}"),
                "json": "{{ trigger.body }}",
            },
        },
        {
            "id": "other_orders",
            "type": "http_request",
            "if": "{{ steps.size.value != 'big' }}",
            "params": {
                "method": "POST",
                "url": api.url(f"/other/{tag}"),
                "json": "{{ trigger.body }}",
            },
        },
        {
            "id": "done",
            "type": "transform",
            "params": {"values": {"size": "{{ steps.size.value }}"}},
        },
    ]


class TestBranches:
    async def test_switch_and_if_route_each_order_as_written(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), _route_orders(api, "route"))
        runs = {}
        for amount in (5000, 250, 7):
            runs[amount] = await queue.put(run_job(workflow, {"amount": amount}))
        for run_id in runs.values():
            assert (await wait_run(db, run_id))["status"] == "succeeded"
        assert [json.loads(h.body) for h in api.hits_for("/big/route")] == [{"amount": 5000}]
        others = sorted(json.loads(h.body)["amount"] for h in api.hits_for("/other/route"))
        assert others == [7, 250]
        steps = await fetch_steps(db, runs[7])
        assert steps[0]["output"] == {"value": "small", "case": None}
        assert (steps[1]["status"], steps[1]["error"]) == (
            "skipped",
            "skipped: condition \"{{ steps.size.value == 'big' }}\" was false",
        )
        assert steps[1]["attempt"] == 0
        assert steps[3]["output"] == {"size": "small"}

    async def test_a_condition_that_cannot_be_evaluated_fails_its_step(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes = [
            {
                "id": "odd",
                "type": "log",
                "if": "{{ trigger.body.n / 0 }}",
                "params": {"message": "never"},
            }
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow, {"n": 1})))
        assert run["status"] == "failed"
        [step] = await fetch_steps(db, str(run["id"]))
        assert step["status"] == "failed"
        assert step["error"].startswith("condition failed:")
