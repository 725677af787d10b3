"""End-to-end fixtures: the whole stack, a local echo server, and direct database reads."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ApiUser
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer, running_server

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="session")
def db(infra: Infra) -> Database:
    return Database(infra.database_url)


@pytest.fixture(scope="session")
def echo() -> Iterator[LocalServer]:
    with running_server() as server:
        yield server


@pytest.fixture(autouse=True)
def _needs_the_whole_stack(stack: Stack) -> None:
    missing = {"auth", "workflows", "ingest", "worker"} - set(stack.services)
    if missing:
        pytest.fail(f"end-to-end tests need every service; missing {sorted(missing)}")


def create_workflow(user: ApiUser, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    with user.client("workflows") as api:
        response = api.post("/workflows", json={"name": "e2e", "nodes": nodes, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def hook_path(workflow: dict[str, Any]) -> str:
    """The path part of webhook_url (the public URL points at the stack's ingest)."""
    return httpx.URL(workflow["webhook_url"]).path


def wait_for_run(user: ApiUser, run_id: str, deadline_s: float = 15) -> dict[str, Any]:
    """Poll GET /runs/{id} until the run is terminal; fail with its last state otherwise."""
    end = time.monotonic() + deadline_s
    last: dict[str, Any] = {}
    with user.client("workflows") as api:
        while time.monotonic() < end:
            response = api.get(f"/runs/{run_id}")
            assert response.status_code == 200, response.text
            last = response.json()
            if last["status"] in TERMINAL:
                return last
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} not finished in {deadline_s}s: {last}")
