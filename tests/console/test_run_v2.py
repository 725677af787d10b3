"""How the run page and the run lists show what the workflow language v2 and flow control add,
on real runs of the stack: parallel steps side by side, a for-each step's items folded into
counts, links to parent, child and replayed runs, and why a run waits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import ApiUser
from tests.console.conftest import Console
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.shared.nodes.local_http import LocalServer, running_server


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with running_server() as started:
        yield started


def _fan_out(user: ApiUser, server: LocalServer) -> dict[str, Any]:
    """crm (a for-each of two slow calls and one bad URL) beside billing (a child run), then
    merge after both."""
    create_workflow(
        user, [{"id": "t", "type": "transform", "params": {"values": {"ok": True}}}], name="enrich"
    )
    slow = server.url("/slow?s=0.4")
    return create_workflow(
        user,
        [
            {
                "id": "crm",
                "type": "http_request",
                "after": [],
                "for_each": "{{ [1, 1, 0] }}",
                "continue_on_fail": True,
                "params": {"url": "{{ '" + slow + "' if item else 'not a url' }}"},
            },
            {
                "id": "billing",
                "type": "call_workflow",
                "after": [],
                "params": {"workflow": "enrich", "input": {}, "wait": False},
            },
            {"id": "merge", "type": "log", "after": ["crm", "billing"], "params": {"message": "m"}},
        ],
        name="fan out",
    )


def test_parallel_steps_items_and_related_runs(
    console: Console, user: ApiUser, server: LocalServer
) -> None:
    workflow = _fan_out(user, server)
    with user.client("workflows") as api:
        run_id = api.post(f"/workflows/{workflow['id']}/run", json={}).json()["run_id"]
    run = wait_for_run(user, run_id)
    assert run["status"] == "succeeded", run
    child = next(step for step in run["steps"] if step["node_id"] == "billing")["child_run_id"]
    with user.client("workflows") as api:
        replayed = api.post(f"/runs/{run_id}/replay", json={"from_step": "merge"})
    assert replayed.status_code == 202, replayed.text
    replay_id = replayed.json()["run_id"]
    wait_for_run(user, replay_id)
    wait_for_run(user, child)

    console.log_in(user)
    page = console.page
    console.go(f"#/runs/{run_id}")
    parallel = page.get_by_test_id("parallel")
    expect(parallel).to_contain_text("2 steps ran in parallel")
    lanes = parallel.locator(".lanes > li.step")
    expect(lanes).to_have_count(2)
    left, right = lanes.nth(0).bounding_box(), lanes.nth(1).bounding_box()
    assert left is not None
    assert right is not None
    assert abs(left["y"] - right["y"]) < 2  # side by side: one row,
    assert right["x"] > left["x"]  # two columns
    expect(page.locator("ol.steps > li.step")).to_have_count(1)  # merge ran after both

    items = page.get_by_test_id("items")
    expect(items.locator("> summary")).to_contain_text("3 items")
    expect(items.locator(".item-count")).to_have_text(["succeeded 2", "failed 1"])
    expect(items.locator(".item-list > li").first).not_to_be_visible()
    items.locator("> summary").click()
    expect(items.locator(".item-list > li")).to_have_count(3)

    expect(page.get_by_test_id("child-run")).to_have_attribute("href", f"#/runs/{child}")
    console.go(f"#/runs/{replay_id}")
    expect(page.get_by_test_id("replay-of")).to_have_attribute("href", f"#/runs/{run_id}")
    console.go(f"#/runs/{child}")
    page.get_by_test_id("parent-run").click()
    expect(page.locator("code.run-id")).to_have_text(run_id)
    assert console.problems == []


def test_a_waiting_run_says_why_in_lists_and_on_its_page(
    console: Console, user: ApiUser, server: LocalServer
) -> None:
    workflow = create_workflow(
        user,
        [{"id": "call", "type": "http_request", "params": {"url": server.url("/slow?s=4")}}],
        name="one per customer",
        concurrency={"limit": 1, "key": "{{ trigger.body.customer }}"},
    )
    with user.client("workflows") as api:
        runs = [
            api.post(f"/workflows/{workflow['id']}/run", json={"customer": "customer-7"}).json()[
                "run_id"
            ]
            for _ in range(2)
        ]
        # One of the two waits for the other's place (bounded: a call takes 4 s). Which one is
        # not fixed: two worker processes can take both deliveries at once, and whichever is
        # admitted first while the place is free runs (docs/flow-control.md).
        end = time.monotonic() + 10
        while True:
            reasons = {run: api.get(f"/runs/{run}").json()["waiting_reason"] for run in runs}
            held = next((run for run, why in reasons.items() if why == "concurrency_limit"), None)
            if held is not None:
                break
            assert time.monotonic() < end, reasons
            time.sleep(0.1)

    console.log_in(user)
    page = console.page
    console.go("#/runs")
    row = page.locator("ul.all-runs > li", has_text=held)
    expect(row.get_by_test_id("waiting-reason")).to_contain_text("concurrency limit reached")
    expect(row.get_by_test_id("waiting-reason")).to_contain_text("key customer-7")
    row.get_by_role("link", name=held).click()
    expect(page.get_by_test_id("waiting-reason")).to_contain_text("concurrency limit reached")
    assert console.problems == []
    for run_id in runs:
        assert wait_for_run(user, run_id, deadline_s=30)["status"] == "succeeded"
