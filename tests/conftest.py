"""Session fixtures: real PostgreSQL and Redis, and the services running as processes."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.servers import Infra, running_infra
from tests.fixtures.stack import Stack, running_stack, stack_env


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with running_infra() as started:
        yield started


@pytest.fixture(scope="session")
def stack_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="automateos-stack-") as folder:
        yield Path(folder)


@pytest.fixture(scope="session")
def stack(infra: Infra, stack_dir: Path) -> Iterator[Stack]:
    """auth, workflows, ingest and two worker processes, as `make up` runs them."""
    env = stack_env(infra.database_url, infra.redis_url, stack_dir / "data")
    components = tuple(
        name
        for name in ("auth", "workflows", "ingest", "worker")
        if (Path(__file__).parents[1] / "services" / name / "__main__.py").exists()
    )
    with running_stack(env, stack_dir, components) as started:
        yield started


class ApiUser:
    """A freshly registered user with a client that sends their bearer token."""

    def __init__(self, stack: Stack, email: str, password: str, tokens: dict[str, str]) -> None:
        self.stack = stack
        self.email = email
        self.password = password
        self.tokens = tokens
        self.headers = {"Authorization": f"Bearer {tokens['access_token']}"}

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.stack.url(service), headers=self.headers, timeout=10)


def register_user(stack: Stack) -> ApiUser:
    """Register and log in a new user with a unique email (tests isolate by tenant)."""
    email = f"user-{secrets.token_hex(6)}@example.com"
    password = "correct horse battery"
    with httpx.Client(base_url=stack.url("auth"), timeout=10) as auth:
        created = auth.post("/auth/register", json={"email": email, "password": password})
        assert created.status_code == 201, created.text
        login = auth.post("/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
    return ApiUser(stack, email, password, login.json())


@pytest.fixture
def user(stack: Stack) -> ApiUser:
    return register_user(stack)


@pytest.fixture
def other_user(stack: Stack) -> ApiUser:
    return register_user(stack)
