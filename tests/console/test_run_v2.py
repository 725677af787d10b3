"""How the run page and the run lists show what the workflow language v2 and flow control add:
parallel steps side by side, a for-each step's items folded into counts, links to parent,
child and replayed runs, and why a run waits.

Those fields come from other branches (graph, children, flow). Until they are merged, these
tests take a real run from the stack and add the fields to the API's real answer on its way
to the browser (Playwright's route.fetch + fulfill), exactly in the shape of the brief's
contract; once merged, the same assertions hold on runs that carry them natively."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from playwright.sync_api import Route, expect

from tests.conftest import ApiUser
from tests.console.conftest import Console
from tests.e2e.conftest import create_workflow, wait_for_run

NODES = [
    {"id": "crm", "type": "log", "params": {"message": "crm"}},
    {"id": "billing", "type": "log", "params": {"message": "billing"}},
    {"id": "merge", "type": "log", "params": {"message": "merge"}},
]


def _runs(user: ApiUser, count: int) -> list[str]:
    workflow = create_workflow(user, NODES, name="fan out")
    with user.client("workflows") as api:
        ids = [
            api.post(f"/workflows/{workflow['id']}/run", json={}).json()["run_id"]
            for _ in range(count)
        ]
    for run_id in ids:
        wait_for_run(user, run_id)
    return ids


def _augment(change: Callable[[Any], None]) -> Callable[[Route], None]:
    def handle(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        change(body)
        route.fulfill(response=response, json=body)

    return handle


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def test_parallel_steps_items_and_related_runs(console: Console, user: ApiUser) -> None:
    run_id, parent, child, original = _runs(user, 4)

    def v2(run: dict[str, Any]) -> None:
        crm, billing, merge = run["steps"]
        start = datetime.fromisoformat(crm["started_at"])
        crm.update(started_at=_iso(start), duration_ms=1000)
        billing.update(started_at=_iso(start + timedelta(milliseconds=5)), duration_ms=990)
        merge.update(started_at=_iso(start + timedelta(milliseconds=1010)), duration_ms=3)
        crm["items"] = [
            {
                "index": i,
                "status": s,
                "output": {"i": i},
                "error": "no" if s == "failed" else None,
                "started_at": crm["started_at"],
                "duration_ms": 10,
            }
            for i, s in enumerate(["succeeded", "succeeded", "failed"])
        ]
        billing["child_run_id"] = child
        run.update(parent_run_id=parent, replay_of=original)

    console.log_in(user)
    page = console.page
    page.route(f"**/runs/{run_id}", _augment(v2))
    console.go(f"#/runs/{run_id}")

    parallel = page.get_by_test_id("parallel")
    expect(parallel).to_contain_text("2 steps ran in parallel")
    expect(parallel.locator(".lanes > li.step")).to_have_count(2)
    lanes = parallel.locator(".lanes > li.step")
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
    expect(items.locator(".item-list > li").nth(2)).to_contain_text("no")

    expect(page.get_by_test_id("child-run")).to_have_attribute("href", f"#/runs/{child}")
    expect(page.get_by_test_id("replay-of")).to_have_attribute("href", f"#/runs/{original}")
    page.get_by_test_id("parent-run").click()
    expect(page.locator("code.run-id")).to_have_text(parent)
    assert console.problems == []


def test_a_waiting_run_says_why_in_lists_and_on_its_page(console: Console, user: ApiUser) -> None:
    [run_id] = _runs(user, 1)

    def waiting(run: dict[str, Any]) -> None:
        run.update(
            status="queued",
            waiting_reason="concurrency_limit",
            waiting_detail={"key": "customer-7", "limit": 1},
        )

    def listed(page_: dict[str, Any]) -> None:
        for run in page_["items"]:
            if run["id"] == run_id:
                waiting(run)

    console.log_in(user)
    page = console.page
    page.route("**/runs?*", _augment(listed))
    page.route(f"**/runs/{run_id}", _augment(waiting))
    console.go("#/runs")
    row = page.locator("ul.all-runs > li", has_text=run_id)
    expect(row.get_by_test_id("waiting-reason")).to_have_text(
        "concurrency limit reached · key customer-7 · limit 1"
    )
    row.get_by_role("link", name=run_id).click()
    expect(page.get_by_test_id("waiting-reason")).to_have_text(
        "concurrency limit reached · key customer-7 · limit 1"
    )
    assert console.problems == []
