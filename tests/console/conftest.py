"""Browser fixtures: one Debian chromium for all console tests, driven by Playwright; a fresh
context (cookies, storage) per test. Console errors, page errors and dialogs are collected so a
test can fail on any of them."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import ApiUser
from tests.e2e.conftest import hook_path
from tests.fixtures.stack import Stack

CHROMIUM_ARGS = [
    "--no-sandbox",  # as root the sandbox cannot start; the pages are our own test stack
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Playwright's own waits, in milliseconds: generous for a shared 2-core machine.
TIMEOUT_MS = 15_000
VIEWPORT = {"width": 1000, "height": 760}


expect.set_options(timeout=TIMEOUT_MS)


def _chromium() -> str:
    """Debian's chromium, or skip (fail in CI, where `make browser-tools` installs it)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is not None:
        return path
    problem = (
        "Debian's chromium is not installed: run `make browser-tools` as root "
        "(or `sudo apt-get install chromium`)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {problem}")
    pytest.skip(problem)


# Package scope, after the stack: while Playwright's sync API is open, its event loop counts as
# running in this thread, so asyncio.run() (migrations, tests/fixtures/database.py) would fail.
# The browser must therefore start after the stack and stop before other packages' tests.
@pytest.fixture(scope="package")
def browser(stack: Stack) -> Iterator[Any]:
    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Console:
    """A browser tab on the stack's console, with everything that went wrong on it."""

    page: Any
    base_url: str
    problems: list[str] = field(default_factory=list)

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.base_url}/console/{fragment}")

    def go(self, fragment: str) -> None:
        """Navigate inside the app (a hash change), not a page load."""
        self.page.evaluate("fragment => { window.location.hash = fragment; }", fragment)

    def log_in(self, user: ApiUser) -> None:
        self.open()
        self.page.get_by_label("Email").fill(user.email)
        self.page.get_by_label("Password").fill(user.password)
        self.page.get_by_role("button", name="Log in").click()
        self.page.get_by_role("heading", name="Workflows").wait_for()

    def unexpected(self, *allowed: str) -> list[str]:
        """Problems other than those containing one of `allowed`."""
        return [p for p in self.problems if not any(a in p for a in allowed)]


def new_console(browser: Any, stack: Stack, **context: Any) -> Console:
    ctx = browser.new_context(**{"viewport": VIEWPORT, "color_scheme": "light", **context})
    ctx.set_default_timeout(TIMEOUT_MS)
    page = ctx.new_page()
    console = Console(page, stack.url("workflows"))

    def on_console(message: Any) -> None:
        if message.type in ("error", "warning"):
            console.problems.append(f"console {message.type}: {message.text}")

    def on_dialog(dialog: Any) -> None:
        console.problems.append(f"dialog {dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.problems.append(f"page error: {error}"))
    page.on("dialog", on_dialog)
    return console


@pytest.fixture
def console(browser: Any, stack: Stack) -> Iterator[Console]:
    tab = new_console(browser, stack)
    yield tab
    tab.page.context.close()


def fire_webhook(
    stack: Stack, workflow: dict[str, Any], body: Any, headers: dict[str, str] | None = None
) -> str:
    """Call the workflow's webhook on the stack's ingest; the run id of its 202."""
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        accepted = ingest.post(hook_path(workflow), json=body, headers=headers)
    assert accepted.status_code == 202, accepted.text
    run_id: str = accepted.json()["run_id"]
    return run_id
