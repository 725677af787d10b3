"""The graph and for-each over the real API: 422s at save, items in GET /runs/{id}."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer


def _orders_flow(echo: LocalServer) -> list[dict[str, Any]]:
    """The README's example: for each order call the shipping API, at most 2 at a time,
    while the CRM is told; then one summary once both branches ended."""
    return [
        {
            "id": "ship",
            "type": "http_request",
            "after": [],
            "for_each": "{{ trigger.body.orders }}",
            "concurrency": 2,
            "params": {
                "method": "POST",
                "url": echo.url("/echo/ship-{{ item.id }}"),
                "json": {"order": "{{ item.id }}", "n": "{{ item_index }}"},
            },
        },
        {
            "id": "crm",
            "type": "http_request",
            "after": [],
            "params": {"method": "POST", "url": echo.url("/echo/crm-graph")},
        },
        {
            "id": "summary",
            "type": "transform",
            "after": ["ship", "crm"],
            "params": {
                "values": {
                    "shipped": "{{ steps.ship | map(attribute='body.path') | list }}",
                    "crm": "{{ steps.crm.status }}",
                }
            },
        },
    ]


class TestGraphApi:
    def test_a_for_each_step_shows_its_items_and_the_join_sees_both_branches(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        workflow = create_workflow(user, _orders_flow(echo))
        assert workflow["nodes"][0]["for_each"] == "{{ trigger.body.orders }}"
        orders = [{"id": f"o-{n}"} for n in range(3)]
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            accepted = ingest.post(hook_path(workflow), json={"orders": orders})
        assert accepted.status_code == 202, accepted.text
        run = wait_for_run(user, accepted.json()["run_id"])
        assert run["status"] == "succeeded", run
        ship, crm, summary = run["steps"]
        assert [s["node_id"] for s in run["steps"]] == ["ship", "crm", "summary"]
        assert summary["output"] == {
            "shipped": ["/echo/ship-o-0", "/echo/ship-o-1", "/echo/ship-o-2"],
            "crm": 200,
        }
        assert crm["items"] is None
        assert summary["items"] is None
        assert [(i["index"], i["status"]) for i in ship["items"]] == [
            (0, "succeeded"),
            (1, "succeeded"),
            (2, "succeeded"),
        ]
        first = ship["items"][0]
        assert first["output"]["body"]["path"] == "/echo/ship-o-0"
        assert '"n":0' in first["output"]["body"]["body"].replace(" ", "")
        assert first["error"] is None
        assert first["started_at"] is not None
        assert first["duration_ms"] is not None

    def test_unknown_ids_and_cycles_are_422_naming_the_nodes(
        self, user: ApiUser, echo: LocalServer
    ) -> None:
        nodes = [
            {"id": "a", "type": "log", "after": ["b"], "params": {"message": "a"}},
            {"id": "b", "type": "log", "after": ["a"], "params": {"message": "b"}},
        ]
        with user.client("workflows") as api:
            cycle = api.post("/workflows", json={"name": "cycle", "nodes": nodes})
            nodes[1]["after"] = ["ghost"]
            unknown = api.post("/workflows", json={"name": "unknown", "nodes": nodes})
        assert cycle.status_code == 422, cycle.text
        [detail] = cycle.json()["detail"]
        assert detail["loc"][:4] in (
            ["body", "nodes", "a", "after"],
            ["body", "nodes", "b", "after"],
        )
        assert "cycle" in detail["msg"]
        assert unknown.status_code == 422, unknown.text
        [detail] = unknown.json()["detail"]
        assert detail["loc"] == ["body", "nodes", "b", "after", 0]
        assert "'ghost'" in detail["msg"]
