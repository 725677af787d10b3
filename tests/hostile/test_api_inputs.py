"""Inputs that used to answer 500: each is a 4xx naming what was wrong, on every service."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import register_user
from tests.fixtures.stack import Stack

JSON = {"content-type": "application/json"}
LOG_NODES = [{"id": "note", "type": "log", "params": {"message": "{{ trigger.body }}"}}]

# Raw JSON documents the standard library parses but PostgreSQL or the worker cannot hold.
NOT_STORABLE = {
    "nan": (b"NaN", "NaN is not a JSON number"),
    "infinity": (b"Infinity", "Infinity is not a JSON number"),
    "minus-infinity": (b"-Infinity", "-Infinity is not a JSON number"),
    "overflowing-float": (b"1e999", "out of range"),
    "int-beyond-64-bits": (b"18446744073709551616", "beyond 64 bits"),
    "huge-int": (b"9" * 5000, "beyond 64 bits"),
}


def _no_keepalive(base_url: str, headers: dict[str, str] | None = None) -> httpx.Client:
    # A 500 used to make the server drop the connection; fresh ones keep one case from
    # failing the next.
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.Client(base_url=base_url, headers=headers, timeout=10, limits=limits)


# One user for the module: registering costs an argon2 hash, and no test here changes the user.
@pytest.fixture(scope="module")
def api(stack: Stack) -> Iterator[httpx.Client]:
    user = register_user(stack)
    with _no_keepalive(stack.url("workflows"), user.headers) as client:
        yield client


@pytest.fixture(scope="module")
def auth(stack: Stack) -> Iterator[httpx.Client]:
    with _no_keepalive(stack.url("auth")) as client:
        yield client


@pytest.fixture(scope="module")
def workflow(api: httpx.Client) -> dict[str, Any]:
    created = api.post("/workflows", json={"name": "target", "nodes": LOG_NODES})
    assert created.status_code == 201, created.text
    return created.json()


def _assert_422(response: httpx.Response, words: str) -> None:
    assert response.status_code == 422, response.text
    assert words in str(response.json()["detail"])


class TestNul:
    @pytest.mark.parametrize(
        "definition",
        [
            {"name": "a\x00b", "nodes": []},
            {"name": "ok", "description": "x\x00", "nodes": []},
            {"name": "ok", "nodes": [{"id": "n", "type": "log", "params": {"message": "\x00"}}]},
            {
                "name": "ok",
                "nodes": [{"id": "n", "type": "transform", "params": {"values": {"k\x00": "v"}}}],
            },
        ],
        ids=["name", "description", "param", "param-key"],
    )
    def test_in_a_workflow_is_422(self, api: httpx.Client, definition: dict[str, Any]) -> None:
        _assert_422(api.post("/workflows", json=definition), "NUL characters")

    def test_in_an_update_is_422(self, api: httpx.Client, workflow: dict[str, Any]) -> None:
        path = f"/workflows/{workflow['id']}"
        _assert_422(api.patch(path, json={"name": "x\x00"}), "NUL characters")
        _assert_422(api.put(path, json={"name": "x\x00", "nodes": []}), "NUL characters")

    def test_in_a_manual_run_body_is_422(self, api: httpx.Client, workflow: dict[str, Any]) -> None:
        path = f"/workflows/{workflow['id']}/run"
        _assert_422(api.post(path, json={"text": "a\x00"}), "NUL characters")
        _assert_422(api.post(path, json={"k\x00": 1}), "NUL characters")

    @pytest.mark.parametrize("path", ["/auth/login", "/auth/register"])
    def test_in_an_email_or_password_is_422(self, auth: httpx.Client, path: str) -> None:
        body = {"email": "a\x00b@example.com", "password": "correct horse battery"}
        _assert_422(auth.post(path, json=body), "NUL characters")
        body = {"email": "nul@example.com", "password": "correct horse\x00battery"}
        _assert_422(auth.post(path, json=body), "NUL characters")

    def test_escaped_backslash_u0000_text_is_fine(self, api: httpx.Client) -> None:
        # The six characters \u0000 (an escaped backslash) are not a NUL.
        created = api.post(
            "/workflows", content=b'{"name": "\\\\u0000", "nodes": []}', headers=JSON
        )
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "\\u0000"


class TestNotStorableNumbers:
    @pytest.mark.parametrize("case", NOT_STORABLE)
    def test_in_a_workflow_is_422(self, api: httpx.Client, case: str) -> None:
        raw, words = NOT_STORABLE[case]
        body = (
            b'{"name": "n", "nodes": [{"id": "f", "type": "filter", "params": '
            b'{"all": [{"left": 1, "op": "eq", "right": ' + raw + b"}]}}]}"
        )
        _assert_422(api.post("/workflows", content=body, headers=JSON), words)

    @pytest.mark.parametrize("case", NOT_STORABLE)
    def test_in_a_manual_run_is_422(
        self, api: httpx.Client, workflow: dict[str, Any], case: str
    ) -> None:
        raw, words = NOT_STORABLE[case]
        path = f"/workflows/{workflow['id']}/run"
        _assert_422(api.post(path, content=b'{"amount": ' + raw + b"}", headers=JSON), words)

    @pytest.mark.parametrize("path", ["/auth/login", "/auth/register", "/auth/refresh"])
    @pytest.mark.parametrize("case", ["nan", "infinity", "int-beyond-64-bits"])
    def test_in_auth_bodies_is_422(self, auth: httpx.Client, path: str, case: str) -> None:
        raw, words = NOT_STORABLE[case]
        body = b'{"email": ' + raw + b', "password": 1, "refresh_token": ' + raw + b"}"
        _assert_422(auth.post(path, content=body, headers=JSON), words)

    def test_64_bit_integers_are_fine(self, api: httpx.Client, workflow: dict[str, Any]) -> None:
        path = f"/workflows/{workflow['id']}/run"
        for raw in (b"18446744073709551615", b"-9223372036854775808", b"1.5e300"):
            response = api.post(path, content=b'{"amount": ' + raw + b"}", headers=JSON)
            assert response.status_code == 202, response.text

    def test_deeply_nested_body_is_422(self, api: httpx.Client, workflow: dict[str, Any]) -> None:
        path = f"/workflows/{workflow['id']}/run"
        body = b"[" * 100_000 + b"]" * 100_000
        _assert_422(api.post(path, content=body, headers=JSON), "nested too deeply")


class TestRegularExpressions:
    def test_pattern_re2_cannot_run_is_422_with_its_reason(self, api: httpx.Client) -> None:
        condition = {"left": "{{ trigger.body.s }}", "op": "matches", "right": r"^(a+)\1$"}
        nodes = [{"id": "only", "type": "filter", "params": {"all": [condition]}}]
        response = api.post("/workflows", json={"name": "redos", "nodes": nodes})
        _assert_422(response, "invalid escape sequence")
        assert response.json()["detail"][0]["loc"][:3] == ["body", "nodes", "only"]
