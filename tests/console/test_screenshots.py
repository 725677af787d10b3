"""The main pages in light and dark, wide and 360 px, with nothing overflowing sideways.

`make console-screenshots` keeps the pictures in docs/console/ (AUTOMATEOS_CONSOLE_SHOTS);
otherwise they go to a temporary folder and the checks run all the same.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from scripts.localinfra import free_port
from tests.conftest import ApiUser
from tests.console.conftest import fire_webhook, new_console
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.fixtures.stack import Stack

NODES = [
    {
        "id": "only_big",
        "type": "filter",
        "params": {"all": [{"left": "{{ trigger.body.amount }}", "op": "gt", "right": 100}]},
    },
    {
        "id": "shape",
        "type": "transform",
        "params": {
            "values": {"order": "{{ trigger.body.id }}", "amount": "{{ trigger.body.amount }}"}
        },
    },
    {"id": "pause", "type": "delay", "params": {"seconds": 0.3}},
    {"id": "note", "type": "log", "params": {"message": "order {{ steps.shape.order }} seen"}},
]
WIDER_THAN_THE_PAGE = """[...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
  .slice(-3).map(e => e.outerHTML.slice(0, 120))"""


def _folder(tmp_path: Path) -> Path:
    kept = os.environ.get("AUTOMATEOS_CONSOLE_SHOTS")
    folder = Path(kept) if kept else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sample(stack: Stack, user: ApiUser) -> tuple[dict[str, Any], str, str]:
    """A workflow with a few succeeded runs and one failed run; returns the two run ids."""
    workflow = create_workflow(user, NODES, name="notify big orders")
    create_workflow(user, [NODES[-1]], name="nightly report", active=False)
    ids = [fire_webhook(stack, workflow, {"id": f"A-{n}", "amount": 90 + 20 * n}) for n in range(4)]
    for run_id in ids:
        wait_for_run(user, run_id)
    closed = f"http://127.0.0.1:{free_port()}/orders"
    failing = {"id": "post", "type": "http_request", "params": {"method": "POST", "url": closed}}
    with user.client("workflows") as api:
        secret = {"name": "crm_token", "type": "bearer", "data": {"token": "not shown anywhere"}}
        assert api.post("/credentials", json=secret).is_success
        assert api.put(
            f"/workflows/{workflow['id']}",
            json={"name": workflow["name"], "nodes": [*NODES, failing]},
        ).is_success
    failed = fire_webhook(stack, workflow, {"id": "A-9", "amount": 250})
    wait_for_run(user, failed)
    return workflow, ids[-1], failed


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_main_pages(browser: Any, stack: Stack, user: ApiUser, tmp_path: Path, scheme: str) -> None:
    workflow, succeeded, failed = _sample(stack, user)
    folder = _folder(tmp_path)
    pages = {
        "workflows": "#/",
        "workflow": f"#/workflows/{workflow['id']}",
        "runs": f"#/workflows/{workflow['id']}/runs",
        "run": f"#/runs/{succeeded}",
        "run-failed": f"#/runs/{failed}",
        "all-runs": "#/runs",
        "editor": f"#/workflows/{workflow['id']}/edit",
        "credentials": "#/credentials",
    }
    for width, suffix in ((1000, ""), (360, "-360")):
        console = new_console(browser, stack, color_scheme=scheme)
        try:
            console.page.set_viewport_size({"width": width, "height": 760})
            console.log_in(user)
            for name, fragment in pages.items():
                console.go(fragment)
                expect(console.page.locator(".loading")).to_have_count(0)
                expect(console.page.locator("main h1")).to_be_visible()
                if name in ("run", "run-failed"):
                    expect(console.page.get_by_test_id("run-status")).not_to_have_text("queued")
                overflow = console.page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                # The last elements sticking out name the culprit when this fails.
                wide = console.page.evaluate(WIDER_THAN_THE_PAGE)
                where = f"{name} at {width} px"
                assert overflow <= 0, f"{where} scrolls sideways by {overflow} px: {wide}"
                if width == 1000 or name in ("workflows", "run", "editor"):
                    console.page.screenshot(path=str(folder / f"{name}-{scheme}{suffix}.png"))
            console.page.get_by_role("button", name="Log out").click()
            console.page.get_by_role("link", name="Register").click()
            expect(console.page.get_by_role("heading", name="Register")).to_be_visible()
            if width == 1000:
                console.page.screenshot(path=str(folder / f"register-{scheme}.png"))
            assert console.problems == []
        finally:
            console.page.context.close()
