"""Everything the console shows comes from webhook senders: it must render as text and run
nothing. Any console error (a CSP violation included), page error or dialog fails the test."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import ApiUser
from tests.console.conftest import Console, fire_webhook
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.fixtures.stack import Stack

SCRIPT = "<script>window.__xss = 1; alert('script')</script>"
IMG = "<img src=x onerror=\"window.__xss = 2; alert('img')\">"
JS_URL = "javascript:window.__xss = 3; alert('href')"
SVG = '<svg onload="window.__xss = 4"><a href="javascript:alert(\'svg\')">x</a></svg>'
BODY = {
    SCRIPT: IMG,
    "script": SCRIPT,
    "img": IMG,
    "href": JS_URL,
    "svg": SVG,
    "iframe": '<iframe src="javascript:alert(5)"></iframe>',
    "nested": [{"html": "<b onmouseover=alert(6)>bold</b>"}, "</pre><script>alert(7)</script>"],
}
HEADERS = {"X-Evil": IMG, "X-Link": JS_URL}
NODES = [
    {"id": "echo", "type": "transform", "params": {"values": {"img": "{{ trigger.body.img }}"}}},
    {"id": "say", "type": "log", "params": {"message": "{{ trigger.body.script }}"}},
]


def _nothing_ran(console: Console) -> None:
    page = console.page
    assert page.evaluate("window.__xss") is None
    main = page.locator("main")
    for tag in ("img", "iframe", "svg", "script", "b"):
        expect(main.locator(tag)).to_have_count(0)
    expect(page.locator('[href^="javascript"]')).to_have_count(0)
    expect(page.locator("script")).to_have_count(1)  # the console's own module
    assert console.problems == []


class TestHostileData:
    def test_payloads_in_a_webhook_render_as_text_and_execute_nothing(
        self, console: Console, user: ApiUser, stack: Stack
    ) -> None:
        workflow = create_workflow(user, NODES, name=f"{IMG} {SCRIPT}", description=SVG)
        run_id = fire_webhook(stack, workflow, BODY, HEADERS)
        assert wait_for_run(user, run_id)["status"] == "succeeded"

        console.log_in(user)
        expect(console.page.locator("li.workflow h2")).to_have_text(f"{IMG} {SCRIPT}")
        _nothing_ran(console)

        console.go(f"#/workflows/{workflow['id']}")
        expect(console.page.get_by_role("heading", level=1)).to_have_text(f"{IMG} {SCRIPT}")
        expect(console.page.locator("main")).to_contain_text(SVG)
        _nothing_ran(console)

        console.go(f"#/runs/{run_id}")
        page = console.page
        expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
        # Open every collapsed block, as a curious operator would.
        closed = page.locator("details:not([open]) > summary")
        for _ in range(20):
            if not closed.count():
                break
            closed.first.click()
        expect(closed).to_have_count(0)
        main = page.locator("main")
        expect(main.locator("details", has_text="body").locator("pre")).to_contain_text(SCRIPT)
        expect(main).to_contain_text(JS_URL)
        expect(main).to_contain_text("</pre><script>alert(7)</script>")
        expect(main.locator("details", has_text="headers").locator("pre")).to_contain_text(
            '"x-evil": "<img src=x onerror=\\"window.__xss = 2'
        )
        expect(page.locator("ol.steps > li", has_text="echo").locator("pre").last).to_contain_text(
            "onerror"
        )
        page.locator("main pre").first.hover()
        _nothing_ran(console)
