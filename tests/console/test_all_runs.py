"""The runs page across workflows (GET /runs): status, workflow and time filters kept in the
address (so a reload or a shared link shows the same runs), cursor pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from playwright.sync_api import expect

from scripts.localinfra import free_port
from tests.conftest import ApiUser
from tests.console.conftest import Console
from tests.e2e.conftest import create_workflow, wait_for_run

LOG = {"id": "note", "type": "log", "params": {"message": "n {{ trigger.body.n }}"}}


def _start(user: ApiUser, workflow: dict[str, Any], count: int) -> list[str]:
    """`count` manual runs; listed from their 202 on (the row is written before the job)."""
    with user.client("workflows") as api:
        ids = []
        for n in range(count):
            response = api.post(f"/workflows/{workflow['id']}/run", json={"n": n})
            assert response.status_code == 202, response.text
            ids.append(response.json()["run_id"])
    return ids


def _filter(console: Console) -> dict[str, list[str]]:
    fragment = urlsplit(console.page.url).fragment
    return parse_qs(fragment.partition("?")[2])


def test_filters_stay_in_the_address_and_pages_follow_the_cursor(
    console: Console, user: ApiUser
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/"
    failing = create_workflow(
        user,
        [{"id": "post", "type": "http_request", "params": {"method": "GET", "url": closed}}],
        name="calls a closed port",
    )
    quiet = create_workflow(user, [LOG], name="just logs")
    failed = _start(user, failing, 2)
    logged = _start(user, quiet, 24)
    for run_id in failed + logged[-1:]:
        wait_for_run(user, run_id, deadline_s=30)

    console.log_in(user)
    page = console.page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()
    rows = page.locator("ul.all-runs > li")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text(logged[-1])  # newest first, across workflows
    expect(rows.first).to_contain_text("just logs")
    page.get_by_role("button", name="Older").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(failed[0])
    expect(rows.first).to_contain_text("calls a closed port")

    page.get_by_label("Status").select_option("failed")
    expect(rows).to_have_count(2)
    expect(page.locator("ul.all-runs .status")).to_have_text(["failed", "failed"])
    assert _filter(console) == {"status": ["failed"]}

    page.get_by_label("Status").select_option("")
    page.get_by_label("Workflow").select_option(label="calls a closed port")
    expect(rows).to_have_count(2)
    assert _filter(console) == {"workflow_id": [failing["id"]]}

    # A reload (or a bookmark) shows the same filter and the same runs.
    page.reload()
    expect(rows).to_have_count(2)
    expect(page.get_by_label("Workflow")).to_have_value(failing["id"])

    # A time range that ends before every run: none; the range is in the address too (the
    # browser and this test share the machine's time zone, as datetime-local is local time).
    page.get_by_label("Workflow").select_option("")
    expect(rows).to_have_count(25)
    earlier = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    page.get_by_label("To").fill(earlier)
    page.get_by_role("button", name="Apply time range").click()
    expect(page.get_by_text("No runs match.")).to_be_visible()
    until = datetime.fromisoformat(_filter(console)["until"][0].replace("Z", "+00:00"))
    assert abs(until - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=2)

    page.get_by_role("button", name="Clear filters").click()
    expect(rows).to_have_count(25)
    assert _filter(console) == {}
    assert console.problems == []
