"""The console's HTTP side: its files and headers, and the login session (no browser needed)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.localinfra import free_port, stop_process
from services.workflows.console.endpoints import STATIC
from services.workflows.console.session import COOKIE
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.services.workflows.conftest import start_workflows

CONSOLE = {"x-automateos-console": "1"}
# The vendored library, exactly as the npm registry serves htm@3.1.1 (preact/standalone.module.js).
VENDORED = {
    "vendor/htm-preact-standalone-3.1.1.js": (
        "72284e8e9079c87817145df1110f74e8a2aa040b2fc384922e18dfcb46fc1fd7"
    ),
    # js-yaml@4.1.0's dist/js-yaml.mjs (MIT), for the editor's YAML.
    "vendor/js-yaml-4.1.0.js": "16f210b939b359b6ec8dde581eb62c157185711dc7b719b33779c43db5c31a91",
}


@pytest.fixture
def browserless(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("workflows"), timeout=10) as client:
        yield client


def _log_in(client: httpx.Client, user: ApiUser) -> httpx.Response:
    body = {"email": user.email, "password": user.password}
    return client.post("/console/session", json=body, headers=CONSOLE)


class TestFiles:
    def test_the_page_and_its_files_carry_a_strict_csp(self, browserless: httpx.Client) -> None:
        for path in ("/console/", "/console/static/app.js", "/console/static/style.css"):
            response = browserless.get(path)
            assert response.status_code == 200, path
            csp = response.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "unsafe-eval" not in csp
            assert response.headers["x-content-type-options"] == "nosniff"

    def test_every_file_the_page_loads_is_served_from_this_origin(
        self, browserless: httpx.Client
    ) -> None:
        page = browserless.get("/console/").text
        assert "<script>" not in page  # no inline script
        sources = re.findall(r'(?:src|href)="([^"]+)"', page)
        assert sources
        for source in sources:
            assert source.startswith("/console/static/"), source
            assert browserless.get(source).status_code == 200, source
        imports = set()
        for module in STATIC.rglob("*.js"):
            imports |= set(re.findall(r"from '(\.[^']+)'", module.read_text()))
        assert "./vendor/htm-preact-standalone-3.1.1.js" in imports
        assert "./vendor/js-yaml-4.1.0.js" in imports

    def test_every_vendored_file_has_its_licence_beside_it(self) -> None:
        for name in VENDORED:
            library = name.removeprefix("vendor/").split("-")[0]
            assert list((STATIC / "vendor").glob(f"{library}-*.LICENSE")), name

    def test_a_bare_console_path_redirects(self, browserless: httpx.Client) -> None:
        response = browserless.get("/console")
        assert response.status_code == 308
        assert response.headers["location"] == "/console/"

    def test_the_vendored_library_is_the_registrys_file(self) -> None:
        for name, digest in VENDORED.items():
            assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest

    def test_static_files_ship_in_the_package(self) -> None:
        pyproject = (Path(__file__).parents[3] / "pyproject.toml").read_text()
        patterns = re.search(r'"services\.workflows\.console" = \[(.*)\]', pyproject)
        assert patterns is not None
        globs = re.findall(r'"([^"]+)"', patterns.group(1))
        shipped = {p for g in globs for p in STATIC.parent.glob(g) if p.is_file()}
        assert shipped == {p for p in STATIC.rglob("*") if p.is_file()}


class TestSession:
    def test_login_sets_an_httponly_strict_cookie_and_returns_only_the_access_token(
        self, browserless: httpx.Client, user: ApiUser
    ) -> None:
        response = _log_in(browserless, user)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"access_token", "token_type", "expires_in"}
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        for flag in ("HttpOnly", "SameSite=strict", "Path=/console/session"):
            assert flag.lower() in cookie.lower(), cookie
        token = response.json()["access_token"]
        headers = {"authorization": f"Bearer {token}"}
        assert browserless.get("/workflows", headers=headers).status_code == 200

    def test_refresh_spends_the_cookie_and_sets_a_new_one(
        self, browserless: httpx.Client, user: ApiUser
    ) -> None:
        _log_in(browserless, user)
        first = browserless.cookies[COOKIE]
        renewed = browserless.post("/console/session/refresh", headers=CONSOLE)
        assert renewed.status_code == 200, renewed.text
        assert browserless.cookies[COOKIE] != first
        # The spent token no longer works (auth rotates refresh tokens).
        replay = httpx.post(
            f"{browserless.base_url}/console/session/refresh",
            headers=CONSOLE,
            cookies={COOKIE: first},
        )
        assert replay.status_code == 401
        assert "max-age=0" in replay.headers["set-cookie"].lower()

    def test_refresh_without_a_session_is_204(self, browserless: httpx.Client) -> None:
        assert browserless.post("/console/session/refresh", headers=CONSOLE).status_code == 204

    def test_a_wrong_password_is_401(self, browserless: httpx.Client, user: ApiUser) -> None:
        body = {"email": user.email, "password": "nope nope nope"}
        response = browserless.post("/console/session", json=body, headers=CONSOLE)
        assert response.status_code == 401
        assert response.json() == {"detail": "invalid email or password"}
        assert "set-cookie" not in response.headers

    def test_rejects_requests_without_the_console_header(
        self, browserless: httpx.Client, user: ApiUser
    ) -> None:
        body = {"email": user.email, "password": user.password}
        assert browserless.post("/console/session", json=body).status_code == 403
        assert browserless.post("/console/session/refresh").status_code == 403
        assert browserless.delete("/console/session").status_code == 403

    def test_rejects_a_malformed_login(self, browserless: httpx.Client) -> None:
        response = browserless.post("/console/session", json={"email": ""}, headers=CONSOLE)
        assert response.status_code == 422
        assert "password" in response.text

    def test_logout_clears_the_cookie(self, browserless: httpx.Client, user: ApiUser) -> None:
        _log_in(browserless, user)
        response = browserless.delete("/console/session", headers=CONSOLE)
        assert response.status_code == 204
        assert COOKIE not in browserless.cookies
        assert browserless.post("/console/session/refresh", headers=CONSOLE).status_code == 204


class TestRegister:
    def test_registers_and_logs_in_with_the_new_account(self, browserless: httpx.Client) -> None:
        body = {"email": f"new-{secrets.token_hex(4)}@example.com", "password": "a long new secret"}
        response = browserless.post("/console/register", json=body, headers=CONSOLE)
        assert response.status_code == 200, response.text
        assert set(response.json()) == {"access_token", "token_type", "expires_in"}
        assert "httponly" in response.headers["set-cookie"].lower()
        headers = {"authorization": f"Bearer {response.json()['access_token']}"}
        assert browserless.get("/workflows", headers=headers).status_code == 200

    def test_a_weak_password_is_422_without_echoing_it(self, browserless: httpx.Client) -> None:
        body = {"email": f"new-{secrets.token_hex(4)}@example.com", "password": "password"}
        response = browserless.post("/console/register", json=body, headers=CONSOLE)
        assert response.status_code == 422, response.text
        assert "password" in response.text
        assert '"input"' not in response.text
        assert "set-cookie" not in response.headers

    def test_a_taken_email_with_another_password_does_not_log_in(
        self, browserless: httpx.Client, user: ApiUser
    ) -> None:
        body = {"email": user.email, "password": "somebody else entirely"}
        response = browserless.post("/console/register", json=body, headers=CONSOLE)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers

    def test_needs_the_console_header(self, browserless: httpx.Client) -> None:
        body = {"email": "x@example.com", "password": "a long new secret"}
        assert browserless.post("/console/register", json=body).status_code == 403


class TestAuthDown:
    def test_login_answers_503_when_auth_cannot_be_reached(
        self, stack: Stack, tmp_path: Path
    ) -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        service = start_workflows(stack, tmp_path, {"AUTOMATEOS_AUTH_URL": dead})
        try:
            body = {"email": "a@example.com", "password": "whatever it is"}
            response = httpx.post(f"{service.url}/console/session", json=body, headers=CONSOLE)
            assert response.status_code == 503
            assert "auth service is unavailable" in response.json()["detail"]
        finally:
            stop_process(service.proc, timeout=20)
