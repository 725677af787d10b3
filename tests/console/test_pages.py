"""The workflow page (nodes, versions, activate, rotate) and the runs page (filter, pages,
auto-refresh)."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from scripts.localinfra import free_port
from tests.conftest import ApiUser
from tests.console.conftest import Console
from tests.e2e.conftest import create_workflow, wait_for_run

LOG = {"id": "note", "type": "log", "params": {"message": "order {{ trigger.body.n }}"}}


def _manual_runs(user: ApiUser, workflow: dict[str, Any], count: int) -> list[str]:
    """Start `count` runs over the API and wait until each is recorded and finished."""
    with user.client("workflows") as api:
        ids = []
        for n in range(count):
            response = api.post(f"/workflows/{workflow['id']}/run", json={"n": n})
            assert response.status_code == 202, response.text
            ids.append(response.json()["run_id"])
    for run_id in ids:
        wait_for_run(user, run_id, deadline_s=30)
    return ids


class TestWorkflowPage:
    def test_shows_nodes_and_versions_toggles_active_and_rotates_after_confirming(
        self, console: Console, user: ApiUser
    ) -> None:
        workflow = create_workflow(user, [LOG, {**LOG, "id": "again", "timeout_s": 5}])
        console.log_in(user)
        console.go(f"#/workflows/{workflow['id']}")
        page = console.page

        nodes = page.locator("ol.nodes > li")
        expect(nodes).to_have_count(2)
        expect(nodes.nth(0)).to_contain_text("order {{ trigger.body.n }}")
        expect(nodes.nth(1)).to_contain_text("settings")
        expect(page.locator("ol.versions > li")).to_have_count(1)

        page.get_by_role("button", name="Deactivate").click()
        expect(page.get_by_role("button", name="Activate")).to_be_visible()
        expect(page.locator("main .pill.off")).to_have_text("inactive")
        expect(page.locator("ol.versions > li")).to_have_count(2)  # a change is a version

        old_url = workflow["webhook_url"]
        page.get_by_role("button", name="Rotate webhook URL…").click()
        page.get_by_role("button", name="Keep the current URL").click()
        expect(page.locator("main code.url")).to_have_text(old_url)
        page.get_by_role("button", name="Rotate webhook URL…").click()
        page.get_by_role("button", name="Rotate now").click()
        expect(page.locator("main code.url")).not_to_have_text(old_url)
        with user.client("workflows") as api:
            fresh = api.get(f"/workflows/{workflow['id']}").json()
        expect(page.locator("main code.url")).to_have_text(fresh["webhook_url"])
        assert fresh["active"] is False
        assert console.problems == []


class TestRunsPage:
    def test_filters_by_status_pages_by_cursor_and_refreshes_itself(
        self, console: Console, user: ApiUser
    ) -> None:
        closed = f"http://127.0.0.1:{free_port()}/"
        failing = {"id": "post", "type": "http_request", "params": {"method": "GET", "url": closed}}
        workflow = create_workflow(user, [failing])
        failed = _manual_runs(user, workflow, 2)
        with user.client("workflows") as api:
            assert api.patch(f"/workflows/{workflow['id']}", json={"nodes": [LOG]}).is_success
        succeeded = _manual_runs(user, workflow, 25)

        console.log_in(user)
        console.go(f"#/workflows/{workflow['id']}/runs")
        page = console.page
        rows = page.locator("ul.runs > li")
        expect(rows).to_have_count(25)
        expect(rows.first).to_contain_text(succeeded[-1])  # newest first
        page.get_by_role("button", name="Older").click()
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text(failed[-1])
        page.get_by_role("button", name="Newer").click()
        expect(rows.first).to_contain_text(succeeded[-1])

        page.get_by_label("Status").select_option("failed")
        expect(rows).to_have_count(2)
        expect(page.locator("ul.runs .status")).to_have_text(["failed", "failed"])
        page.get_by_label("Status").select_option("")
        expect(rows).to_have_count(25)

        [newest] = _manual_runs(user, workflow, 1)
        # No click, no reload: the newest page refreshes every 5 s.
        expect(rows.first).to_contain_text(newest, timeout=12_000)
        assert console.problems == []

    def test_an_unknown_workflow_says_not_found(self, console: Console, user: ApiUser) -> None:
        console.log_in(user)
        console.go("#/workflows/00000000-0000-0000-0000-000000000000/runs")
        expect(console.page.get_by_role("heading", name="Workflow not found")).to_be_visible()
        with httpx.Client(base_url=console.base_url) as plain:
            assert plain.get("/console/").status_code == 200
