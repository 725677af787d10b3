"""Password hashing under a burst: memory stays bounded, and a saturated hasher says so (503)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localinfra import free_port, stop_process
from tests.fixtures.stack import ServiceProcess, Stack, start_service, wait_ready
from tests.services.auth.conftest import (
    async_auth_client,
    new_client_address,
    new_email,
    peak_rss_mib,
)


async def _burst(url_stack: Stack, count: int) -> list[tuple[int, str | None]]:
    """`count` concurrent failed logins, each from its own client (no throttle in the way).

    Through 127.0.0.1, a proxy the stack trusts (and uvicorn trusted by default before).
    """
    async with async_auth_client(url_stack, "127.0.0.1") as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/auth/login",
                    json={"email": new_email(), "password": "wrong guess"},
                    headers={"X-Forwarded-For": new_client_address()},
                )
                for _ in range(count)
            )
        )
    return [(r.status_code, r.headers.get("retry-after")) for r in responses]


class TestMemoryBound:
    def test_forty_concurrent_logins_stay_within_the_hashing_budget(self, stack: Stack) -> None:
        # 4 hashes at once x 19 MiB; before the bound, 40 took auth from 110 MB to 1.4 GB.
        statuses = asyncio.run(_burst(stack, 40))
        assert {status for status, _ in statuses} <= {401, 503}
        peak = peak_rss_mib(stack.services["auth"].proc.pid)
        assert peak < 330, f"auth peaked at {peak:.0f} MiB"


@pytest.fixture(scope="module")
def one_slot_auth(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An auth process that hashes one password at a time and queues for 50 ms only."""
    port = free_port()
    env = {
        **stack.env,
        "AUTOMATEOS_PASSWORD_HASH_CONCURRENCY": "1",
        "AUTOMATEOS_PASSWORD_HASH_QUEUE_SECONDS": "0.05",
    }
    log_dir: Path = tmp_path_factory.mktemp("one-slot-auth")
    service: ServiceProcess = start_service("auth", ["--port", str(port)], port, env, log_dir)
    try:
        wait_ready(service)
        yield Stack(env, {"auth": service})
    finally:
        stop_process(service.proc, timeout=20)


class TestSaturation:
    def test_callers_beyond_the_queue_get_503_with_retry_after(self, one_slot_auth: Stack) -> None:
        statuses = asyncio.run(_burst(one_slot_auth, 12))
        counts = Counter(status for status, _ in statuses)
        assert set(counts) == {401, 503}, counts  # some checked, the rest told to come back
        assert all(int(retry or 0) >= 1 for status, retry in statuses if status == 503)
