"""The console's login session: a thin client of the auth service, and the refresh cookie.

The browser keeps the short-lived access token in memory only; the refresh token lives in an
HttpOnly, SameSite=Strict cookie scoped to /console/session. Script on the page (ours, or an
attacker's if escaping ever failed) can read neither the cookie nor a token from storage, and
a reload restores the session through one refresh call. Login goes through this service, not
straight to auth, because locally the two are different origins (ports 8001 and 8002).
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel

COOKIE = "automateos_console_refresh"
COOKIE_PATH = "/console/session"
# Forms cannot set a custom header and a cross-origin script needs a CORS preflight (which we
# never grant) to send one: with SameSite=Strict, this closes cross-site request forgery twice.
CSRF_HEADER = "x-automateos-console"
AUTH_TIMEOUT_S = 10.0
# Auth counts failed logins per client; these two headers tell it which browser a console login
# is for, so the console's users are not one client to it (services/auth/clients.py).
FORWARDED_CLIENT_HEADER = "X-AutomateOS-Client"
INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name, not a secret


class AuthRejected(Exception):
    """Auth answered with a 4xx; `status` and `detail` are passed on to the browser."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"auth answered {status}")
        self.status = status
        self.detail = detail


class AuthUnavailable(Exception):
    """Auth could not be reached or failed (5xx): the browser gets a 503."""


class ConsoleTokens(BaseModel):
    """What the page gets: the access token and when it expires. Never the refresh token."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 (the scheme name, not a secret)
    expires_in: int


class AuthClient:
    """Calls the auth service's register, login, refresh and logout endpoints."""

    def __init__(self, http: httpx.AsyncClient, auth_url: str, internal_token: str) -> None:
        self._http = http
        self._base = auth_url.rstrip("/")
        self._internal_token = internal_token

    async def login(self, email: str, password: str, browser: str) -> dict[str, Any]:
        """The token pair for these credentials; AuthRejected on a wrong password or throttle.

        `browser` is the address the console's request came from: auth throttles by it.
        """
        headers = {FORWARDED_CLIENT_HEADER: browser, INTERNAL_TOKEN_HEADER: self._internal_token}
        return await self._post("/auth/login", {"email": email, "password": password}, headers)

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """A new token pair (the old refresh token is spent); AuthRejected when it is not valid."""
        return await self._post("/auth/refresh", {"refresh_token": refresh_token})

    async def register(self, email: str, password: str) -> None:
        """Create the account; AuthRejected (422) names a weak password or a malformed email.

        Auth answers a taken email like a new one (it does not tell who has an account): the
        login that follows is what fails then, with auth's usual 401.
        """
        body = {"email": email, "password": password}
        await self._post("/auth/register", body, expected=201, tokens=False)

    async def logout(self, refresh_token: str) -> None:
        """Revoke the token's whole refresh family; AuthRejected when it is not valid."""
        await self._send("/auth/logout", {"refresh_token": refresh_token}, {}, expected=204)

    async def _send(
        self, path: str, body: dict[str, str], headers: dict[str, str], *, expected: int
    ) -> httpx.Response:
        try:
            response = await self._http.post(
                self._base + path, json=body, headers=headers, timeout=AUTH_TIMEOUT_S
            )
        except httpx.HTTPError as exc:
            raise AuthUnavailable(type(exc).__name__) from None
        if response.status_code >= 500:
            raise AuthUnavailable(f"auth answered {response.status_code}")
        if response.status_code != expected:
            raise AuthRejected(response.status_code, _detail(response))
        return response

    async def _post(
        self,
        path: str,
        body: dict[str, str],
        headers: dict[str, str] | None = None,
        *,
        expected: int = 200,
        tokens: bool = True,
    ) -> dict[str, Any]:
        response = await self._send(path, body, headers or {}, expected=expected)
        try:
            payload: Any = response.json()
        except ValueError:
            raise AuthUnavailable("auth answered something that is not JSON") from None
        if not isinstance(payload, dict) or (tokens and "access_token" not in payload):
            raise AuthUnavailable("auth answered without tokens")
        return payload


def _detail(response: httpx.Response) -> Any:
    try:
        payload: Any = response.json()
    except ValueError:
        payload = None
    detail = payload.get("detail") if isinstance(payload, dict) else None
    return detail or "rejected by the auth service"


def page_tokens(pair: dict[str, Any]) -> ConsoleTokens:
    return ConsoleTokens(access_token=pair["access_token"], expires_in=int(pair["expires_in"]))
