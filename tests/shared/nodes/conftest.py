from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.shared.nodes.local_http import LocalServer, loopback_client, running_server


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalServer]:
    with running_server() as server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    http = loopback_client()
    yield http
    await http.aclose()
