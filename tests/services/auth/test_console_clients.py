"""Console logins are counted per browser at auth, across the workflows service's hop.

The console's login reaches auth from the workflows service's own address; these tests are the
browsers behind it (the test stack's workflows process trusts X-Forwarded-For from 127.0.0.1, as
it would the Ingress), and check that no browser can lock another out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.services.auth.conftest import UNTRUSTED_PEER, auth_client, new_client_address, new_email

CONSOLE = {"x-automateos-console": "1"}


@pytest.fixture
def console(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("workflows"), headers=CONSOLE, timeout=30) as client:
        yield client


def _console_login(
    console: httpx.Client, email: str, password: str, browser: str
) -> httpx.Response:
    return console.post(
        "/console/session",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": browser},
    )


class TestConsoleLoginThrottle:
    def test_wrong_passwords_from_one_browser_do_not_lock_the_victim_out_of_another(
        self, console: httpx.Client, user: ApiUser
    ) -> None:
        attacker = new_client_address()
        statuses = [
            _console_login(console, user.email, "wrong guess", attacker).status_code
            for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]
        victim = _console_login(console, user.email, user.password, new_client_address())
        assert victim.status_code == 200, victim.text

    def test_made_up_emails_from_one_browser_lock_out_only_that_browser(
        self, console: httpx.Client, user: ApiUser
    ) -> None:
        attacker = new_client_address()
        statuses = [
            _console_login(console, new_email(), "wrong guess", attacker).status_code
            for _ in range(21)
        ]
        assert statuses == [401] * 20 + [429]
        other = _console_login(console, user.email, user.password, new_client_address())
        assert other.status_code == 200, other.text


class TestForwardedClientIsBelievedOnlyFromTheConsole:
    def test_without_the_internal_token_the_header_is_ignored(
        self, stack: Stack, user: ApiUser
    ) -> None:
        with auth_client(stack, UNTRUSTED_PEER) as auth:
            for _ in range(5):
                guess = auth.post(
                    "/auth/login",
                    json={"email": user.email, "password": "wrong guess"},
                    headers={"X-AutomateOS-Client": new_client_address()},
                )
                assert guess.status_code == 401
            refused = auth.post(
                "/auth/login",
                json={"email": user.email, "password": user.password},
                headers={"X-AutomateOS-Client": new_client_address()},
            )
        assert refused.status_code == 429

    def test_a_wrong_internal_token_is_the_same_as_none(self, stack: Stack) -> None:
        # A peer of its own, so its per-client budget (20) is this test's alone.
        with auth_client(stack, "127.0.0.5") as auth:
            statuses = [
                auth.post(
                    "/auth/login",
                    json={"email": new_email(), "password": "wrong guess"},
                    headers={
                        "X-AutomateOS-Client": new_client_address(),
                        "X-Internal-Token": "not-the-token",
                    },
                ).status_code
                for _ in range(21)
            ]
        assert statuses == [401] * 20 + [429]

    def test_with_the_internal_token_each_named_client_is_its_own(
        self, stack: Stack, user: ApiUser
    ) -> None:
        token = (Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "internal-token").read_text().strip()
        browsers = [new_client_address() for _ in range(3)]

        def login(password: str, browser: str) -> int:
            return auth.post(
                "/auth/login",
                json={"email": user.email, "password": password},
                headers={"X-AutomateOS-Client": browser, "X-Internal-Token": token},
            ).status_code

        with auth_client(stack, "127.0.0.6") as auth:
            # 12 failures on one account through one peer, 4 per browser: nobody is refused.
            assert [login("wrong guess", b) for b in browsers for _ in range(4)] == [401] * 12
            assert login(user.password, browsers[0]) == 200
