"""Clients of the auth service as different network clients: through the trusted proxy (the
test stack trusts 127.0.0.1 and 127.0.0.2 to forward X-Forwarded-For) or as an untrusted peer."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.stack import Stack

UNTRUSTED_PEER = "127.0.0.3"
PROXY_PEER = "127.0.0.2"


def new_email() -> str:
    return f"a-{secrets.token_hex(6)}@example.com"


def new_client_address() -> str:
    """A client address no other test uses (documentation range, random host)."""
    return f"198.51.{secrets.randbelow(256)}.{secrets.randbelow(254) + 1}"


def auth_client(stack: Stack, peer: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from `peer` (any 127/8 address is loopback on Linux)."""
    transport = httpx.HTTPTransport(local_address=peer)
    return httpx.Client(base_url=stack.url("auth"), transport=transport, timeout=30)


def async_auth_client(stack: Stack, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=peer)
    limits = httpx.Limits(max_connections=100)
    return httpx.AsyncClient(
        base_url=stack.url("auth"), transport=transport, timeout=30, limits=limits
    )


@pytest.fixture
def auth(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url("auth"), timeout=30) as client:
        yield client


@pytest.fixture
def via_proxy(stack: Stack) -> Iterator[httpx.Client]:
    with auth_client(stack, PROXY_PEER) as client:
        yield client


@pytest.fixture
def untrusted(stack: Stack) -> Iterator[httpx.Client]:
    with auth_client(stack, UNTRUSTED_PEER) as client:
        yield client


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")
