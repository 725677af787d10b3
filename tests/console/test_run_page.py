"""One run in the console: live progress, steps, errors, retry, and someone else's run."""

from __future__ import annotations

import time

from playwright.sync_api import expect

from scripts.localinfra import free_port
from tests.conftest import ApiUser, register_user
from tests.console.conftest import Console, fire_webhook
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.fixtures.stack import Stack

ACTIVE = {"queued", "running", "waiting"}


def _statuses_until_terminal(console: Console, deadline_s: float = 20) -> list[str]:
    """Every status the page showed, in order, until a terminal one (read every 50 ms)."""
    seen: list[str] = []
    status = console.page.get_by_test_id("run-status")
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if status.count():
            text = status.inner_text().strip()
            if not seen or seen[-1] != text:
                seen.append(text)
            if text not in ACTIVE:
                return seen
        time.sleep(0.05)
    raise AssertionError(f"no terminal status within {deadline_s}s; seen {seen}")


class TestLiveRun:
    def test_a_webhook_run_goes_from_queued_to_succeeded_without_a_reload(
        self, console: Console, user: ApiUser, stack: Stack
    ) -> None:
        nodes = [
            {
                "id": "shape",
                "type": "transform",
                "params": {"values": {"n": "{{ trigger.body.n }}"}},
            },
            {"id": "pause", "type": "delay", "params": {"seconds": 1.5}},
            {"id": "note", "type": "log", "params": {"message": "done {{ steps.shape.n }}"}},
        ]
        workflow = create_workflow(user, nodes)
        console.log_in(user)
        console.page.evaluate("window.__sameDocument = true")

        run_id = fire_webhook(stack, workflow, {"n": 7})
        console.go(f"#/runs/{run_id}")
        seen = _statuses_until_terminal(console)

        assert seen[-1] == "succeeded", seen
        assert set(seen[:-1]) & ACTIVE, f"never saw the run before it finished: {seen}"
        assert console.page.evaluate("window.__sameDocument") is True  # no full reload
        steps = console.page.locator("ol.steps > li")
        expect(steps).to_have_count(3)
        expect(steps.nth(0)).to_contain_text("shape")
        expect(steps.nth(1)).to_contain_text("pause")
        expect(steps.nth(1)).to_contain_text(" s")  # its duration, e.g. "1.50 s"
        expect(steps.locator(".track .bar")).to_have_count(3)  # the waterfall
        output = steps.nth(0).locator("details", has_text="output")
        output.locator("summary").click()
        expect(output.locator("pre")).to_contain_text('"n": 7')
        expect(console.page.get_by_role("button", name="Cancel run")).to_have_count(0)
        expect(console.page.locator("details", has_text="body").locator("pre")).to_contain_text(
            '"n": 7'
        )
        assert console.problems == []

    def test_a_waiting_run_shows_when_it_resumes_and_is_cancelled_from_the_page(
        self, console: Console, user: ApiUser, stack: Stack
    ) -> None:
        # A delay over 5 s parks the run (engine v2): `waiting`, with `resume_at`.
        workflow = create_workflow(
            user, [{"id": "nap", "type": "delay", "params": {"seconds": 600}}]
        )
        console.log_in(user)
        run_id = fire_webhook(stack, workflow, {})
        console.go(f"#/runs/{run_id}")
        page = console.page
        expect(page.get_by_test_id("run-status")).to_have_text("waiting")
        expect(page.locator("dl.facts")).to_contain_text("Resumes")

        page.get_by_role("button", name="Cancel run").click()

        expect(page.get_by_test_id("run-status")).to_have_text("cancelled")
        expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
        assert wait_for_run(user, run_id)["status"] == "cancelled"
        assert console.problems == []


class TestFailedRun:
    def test_shows_the_error_and_retries_from_the_page(
        self, console: Console, user: ApiUser, stack: Stack
    ) -> None:
        closed = f"http://127.0.0.1:{free_port()}/nothing-listens-here"
        nodes = [{"id": "post", "type": "http_request", "params": {"method": "GET", "url": closed}}]
        workflow = create_workflow(user, nodes)
        run_id = fire_webhook(stack, workflow, {"order": "A-1"})
        assert wait_for_run(user, run_id)["status"] == "failed"

        console.log_in(user)
        console.go(f"#/runs/{run_id}")
        page = console.page
        expect(page.get_by_test_id("run-status")).to_have_text("failed")
        step = page.locator("ol.steps > li", has_text="post")
        expect(step.locator("pre.error-text")).to_be_visible()
        expect(step.locator("pre.error-text")).not_to_be_empty()

        page.get_by_role("button", name="Retry").click()
        expect(page).not_to_have_url(f"{console.base_url}/console/#/runs/{run_id}")
        expect(page.get_by_test_id("run-status")).to_have_text("failed", timeout=20_000)
        expect(page.locator("dl.facts")).to_contain_text(run_id)  # "Retry of" the original
        assert console.problems == []


class TestSomeoneElsesRun:
    def test_shows_not_found(self, console: Console, user: ApiUser, stack: Stack) -> None:
        workflow = create_workflow(
            user, [{"id": "note", "type": "log", "params": {"message": "x"}}]
        )
        run_id = fire_webhook(stack, workflow, {"secret": "mine"})
        wait_for_run(user, run_id)

        console.log_in(register_user(stack))
        console.go(f"#/runs/{run_id}")
        expect(console.page.get_by_role("heading", name="Run not found")).to_be_visible()
        expect(console.page.locator("main")).not_to_contain_text("mine")
        console.go(f"#/workflows/{workflow['id']}")
        expect(console.page.get_by_role("heading", name="Workflow not found")).to_be_visible()
        assert console.unexpected("status of 404") == []
