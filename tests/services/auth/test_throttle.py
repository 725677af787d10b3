"""Login throttling against the real auth process: who is counted, and that counting is atomic."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.services.auth.conftest import (
    PROXY_PEER,
    async_auth_client,
    new_client_address,
    new_email,
)


def _login(client: httpx.Client, email: str, password: str, address: str) -> httpx.Response:
    return client.post(
        "/auth/login",
        json={"email": email, "password": password},
        headers={"X-Forwarded-For": address},
    )


class TestPerAccountAndClient:
    def test_concurrent_guesses_beyond_the_limit_are_refused(
        self, stack: Stack, user: ApiUser
    ) -> None:
        address = new_client_address()

        async def guess_40() -> list[int]:
            async with async_auth_client(stack, PROXY_PEER) as client:
                body = {"email": user.email, "password": "wrong guess"}
                headers = {"X-Forwarded-For": address}
                responses = await asyncio.gather(
                    *(client.post("/auth/login", json=body, headers=headers) for _ in range(40))
                )
            return [response.status_code for response in responses]

        statuses = Counter(asyncio.run(guess_40()))
        # Exactly the limit (5) were checked and failed; the other 35 never reached argon2.
        assert statuses == {401: 5, 429: 35}

    def test_owner_on_another_client_is_never_refused(
        self, via_proxy: httpx.Client, user: ApiUser
    ) -> None:
        attacker = new_client_address()
        for _ in range(6):
            _login(via_proxy, user.email, "wrong guess", attacker)
        assert _login(via_proxy, user.email, user.password, attacker).status_code == 429
        owner = _login(via_proxy, user.email, user.password, new_client_address())
        assert owner.status_code == 200, owner.text

    def test_success_clears_that_clients_failures_on_the_account(
        self, via_proxy: httpx.Client, user: ApiUser
    ) -> None:
        address = new_client_address()
        for _ in range(4):
            assert _login(via_proxy, user.email, "wrong guess", address).status_code == 401
        assert _login(via_proxy, user.email, user.password, address).status_code == 200
        for _ in range(4):
            assert _login(via_proxy, user.email, "wrong guess", address).status_code == 401

    def test_refusal_says_when_to_retry(self, via_proxy: httpx.Client, user: ApiUser) -> None:
        address = new_client_address()
        for _ in range(5):
            _login(via_proxy, user.email, "wrong guess", address)
        refused = _login(via_proxy, user.email, "wrong guess", address)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["retry-after"]) <= 900


class TestPerClient:
    def test_one_client_guessing_across_accounts_is_stopped(self, via_proxy: httpx.Client) -> None:
        address = new_client_address()
        statuses = [
            _login(via_proxy, new_email(), "wrong guess", address).status_code for _ in range(21)
        ]
        assert statuses == [401] * 20 + [429]  # AUTOMATEOS_LOGIN_MAX_FAILURES_PER_CLIENT=20


class TestTrustedProxies:
    def test_a_configured_proxy_forwards_each_clients_own_address(
        self, via_proxy: httpx.Client, user: ApiUser
    ) -> None:
        # 127.0.0.2 is trusted through a CIDR entry: five clients behind it fail 4 times each
        # (20 failures through one peer) and none of them is throttled.
        clients = [new_client_address() for _ in range(5)]
        for address in clients:
            for _ in range(4):
                assert _login(via_proxy, user.email, "wrong guess", address).status_code == 401
        assert _login(via_proxy, user.email, user.password, clients[0]).status_code == 200

    def test_an_untrusted_peer_cannot_pick_its_address(
        self, untrusted: httpx.Client, user: ApiUser
    ) -> None:
        # A fresh X-Forwarded-For on every guess: ignored, all five count against the peer.
        for _ in range(5):
            _login(untrusted, user.email, "wrong guess", new_client_address())
        refused = _login(untrusted, user.email, user.password, new_client_address())
        assert refused.status_code == 429
