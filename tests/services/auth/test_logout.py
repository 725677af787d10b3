"""`POST /auth/logout` revokes the refresh token's whole family; the console's logout calls it."""

from __future__ import annotations

import httpx

from tests.conftest import ApiUser
from tests.fixtures.stack import Stack

CONSOLE = {"x-automateos-console": "1"}
COOKIE = "automateos_console_refresh"


def _refresh(auth: httpx.Client, token: str) -> httpx.Response:
    return auth.post("/auth/refresh", json={"refresh_token": token})


def _login(auth: httpx.Client, user: ApiUser) -> str:
    answer = auth.post("/auth/login", json={"email": user.email, "password": user.password})
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["refresh_token"]
    return token


class TestLogout:
    def test_revokes_every_token_of_the_family(self, auth: httpx.Client, user: ApiUser) -> None:
        first = user.tokens["refresh_token"]
        second = _refresh(auth, first).json()["refresh_token"]
        third = _refresh(auth, second).json()["refresh_token"]
        # Logging out with a spent token of the family still ends the live one.
        assert auth.post("/auth/logout", json={"refresh_token": first}).status_code == 204
        assert _refresh(auth, third).status_code == 401

    def test_with_the_newest_token_and_twice(self, auth: httpx.Client, user: ApiUser) -> None:
        newest = _refresh(auth, user.tokens["refresh_token"]).json()["refresh_token"]
        assert auth.post("/auth/logout", json={"refresh_token": newest}).status_code == 204
        assert auth.post("/auth/logout", json={"refresh_token": newest}).status_code == 204
        assert _refresh(auth, newest).status_code == 401

    def test_other_sessions_of_the_user_stay(self, auth: httpx.Client, user: ApiUser) -> None:
        other_session = _login(auth, user)
        assert (
            auth.post(
                "/auth/logout", json={"refresh_token": user.tokens["refresh_token"]}
            ).status_code
            == 204
        )
        assert _refresh(auth, other_session).status_code == 200

    def test_rejects_what_is_not_a_refresh_token(self, auth: httpx.Client, user: ApiUser) -> None:
        for token in ("not a token", user.tokens["access_token"]):
            assert auth.post("/auth/logout", json={"refresh_token": token}).status_code == 401
        assert auth.post("/auth/logout", json={}).status_code == 422


class TestConsoleLogout:
    def test_revokes_the_session_cookies_token(
        self, stack: Stack, auth: httpx.Client, user: ApiUser
    ) -> None:
        with httpx.Client(base_url=stack.url("workflows"), headers=CONSOLE, timeout=30) as console:
            login = console.post(
                "/console/session", json={"email": user.email, "password": user.password}
            )
            assert login.status_code == 200, login.text
            refresh_token = console.cookies[COOKIE]
            out = console.delete("/console/session")
            assert out.status_code == 204
            assert COOKIE not in console.cookies
        # A copy of the cookie taken before logout is worth nothing now.
        assert _refresh(auth, refresh_token).status_code == 401
