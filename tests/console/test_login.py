"""Logging in and out of the console, and the list of workflows a user created over the API."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.conftest import ApiUser
from tests.console.conftest import Console, fire_webhook
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.fixtures.stack import Stack

LOG = {"id": "note", "type": "log", "params": {"message": "hello"}}


class TestLogin:
    def test_logs_in_with_the_keyboard_and_sees_a_workflow_made_over_the_api(
        self, console: Console, user: ApiUser, stack: Stack
    ) -> None:
        workflow = create_workflow(user, [LOG], name="orders to slack")
        run_id = fire_webhook(stack, workflow, {"n": 1})
        wait_for_run(user, run_id)

        console.open()
        page = console.page
        expect(page.get_by_label("Email")).to_be_focused()
        page.keyboard.type(user.email)
        page.keyboard.press("Tab")
        page.keyboard.type(user.password)
        page.keyboard.press("Enter")

        card = page.locator("li.workflow", has_text="orders to slack")
        expect(card).to_be_visible()
        expect(card).to_contain_text(workflow["webhook_url"])
        expect(card).to_contain_text("active")
        expect(card).to_contain_text(f"v{workflow['version']}")
        expect(card.locator("dd").first).to_contain_text("succeeded")  # the last run
        expect(card.locator("ul.counts")).to_contain_text("succeeded 1")

        # On with the keyboard only: Tab to the workflow's link, Enter opens it.
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement.textContent") == "orders to slack":
                break
        page.keyboard.press("Enter")
        expect(page.get_by_role("heading", level=1)).to_have_text("orders to slack")
        assert console.problems == []

    def test_a_reload_keeps_the_session_and_log_out_ends_it(
        self, console: Console, user: ApiUser
    ) -> None:
        console.log_in(user)
        page = console.page

        page.reload()
        expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        page.reload()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        assert console.problems == []

    def test_the_refresh_token_is_out_of_reach_of_scripts(
        self, console: Console, user: ApiUser
    ) -> None:
        console.log_in(user)
        [cookie] = console.page.context.cookies()
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Strict"
        assert cookie["path"] == "/console/session"
        assert console.page.evaluate("document.cookie") == ""
        assert console.page.evaluate("Object.keys(localStorage).length") == 0
        assert console.page.evaluate("Object.keys(sessionStorage).length") == 0

    def test_a_wrong_password_says_so(self, console: Console, user: ApiUser) -> None:
        console.open()
        console.page.get_by_label("Email").fill(user.email)
        console.page.get_by_label("Password").fill("not the password")
        console.page.get_by_role("button", name="Log in").click()
        expect(console.page.get_by_role("alert")).to_contain_text("invalid email or password")
        assert console.unexpected("status of 401") == []
