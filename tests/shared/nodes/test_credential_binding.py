"""Credentials bound to the origin and hosts they are meant for, on the shared client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.nodes.credential_binding import (
    CredentialBinding,
    CredentialMisdirected,
    bound,
    host_matches,
)
from tests.shared.nodes.local_http import LocalServer, running_server

KEY_HEADERS = {"X-Api-Key": "k-123456", "Private-Token": "p-123456", "X-Plain": "kept"}
BINDING = CredentialBinding(headers=frozenset({"x-api-key", "private-token"}))


@pytest.fixture(scope="module")
def elsewhere() -> Iterator[LocalServer]:
    with running_server() as server:
        yield server


def _received(server: LocalServer, path: str) -> dict[str, str]:
    [headers] = [headers for hit, headers in server.headers if hit == path]
    return headers


class TestRedirects:
    async def test_credential_headers_are_dropped_on_a_redirect_to_another_origin(
        self, client: httpx.AsyncClient, local_server: LocalServer, elsewhere: LocalServer
    ) -> None:
        target = elsewhere.url("/echo/cross-origin")
        with bound(BINDING):
            answer = await client.get(
                local_server.url("/redirect"), params={"to": target}, headers=KEY_HEADERS
            )
        assert answer.status_code == 200
        received = _received(elsewhere, "/echo/cross-origin")
        assert "x-api-key" not in received
        assert "private-token" not in received
        assert received["x-plain"] == "kept"

    async def test_they_stay_on_a_redirect_within_the_origin(
        self, client: httpx.AsyncClient, local_server: LocalServer
    ) -> None:
        with bound(BINDING):
            await client.get(
                local_server.url("/redirect"),
                params={"to": local_server.url("/echo/same-origin")},
                headers=KEY_HEADERS,
            )
        assert _received(local_server, "/echo/same-origin")["x-api-key"] == "k-123456"

    async def test_without_a_binding_nothing_changes(
        self, client: httpx.AsyncClient, local_server: LocalServer, elsewhere: LocalServer
    ) -> None:
        target = elsewhere.url("/echo/unbound")
        await client.get(local_server.url("/redirect"), params={"to": target}, headers=KEY_HEADERS)
        assert _received(elsewhere, "/echo/unbound")["x-api-key"] == "k-123456"


class TestAllowedHosts:
    async def test_a_request_to_another_host_fails_before_anything_is_sent(
        self, client: httpx.AsyncClient, local_server: LocalServer
    ) -> None:
        binding = CredentialBinding(allowed_hosts={"github": ("api.github.com",)})
        refused = pytest.raises(CredentialMisdirected, match=r"only to api\.github\.com")
        with bound(binding), refused:
            await client.get(local_server.url("/echo/fenced-off"))
        assert "/echo/fenced-off" not in local_server.hits

    async def test_an_allowed_host_is_reached(
        self, client: httpx.AsyncClient, local_server: LocalServer
    ) -> None:
        with bound(CredentialBinding(allowed_hosts={"local": ("127.0.0.1",)})):
            answer = await client.get(local_server.url("/echo/fenced-in"))
        assert answer.status_code == 200

    @pytest.mark.parametrize(
        ("host", "patterns", "matches"),
        [
            ("api.github.com", ("api.github.com",), True),
            ("API.GitHub.com.", ("api.github.com",), True),
            ("evil-api.github.com", ("api.github.com",), False),
            ("eu.api.example", ("*.api.example",), True),
            ("api.example", ("*.api.example",), False),
            ("xapi.example", ("*.api.example",), False),
        ],
    )
    def test_host_patterns(self, host: str, patterns: tuple[str, ...], matches: bool) -> None:
        assert host_matches(host, patterns) is matches
