"""Fixtures of the CLI and client tests: the installed `automateos` command, run as a user
would run it, against the real stack."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from automateos import Client
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer, running_server

# The console script pip installed from [project.scripts], beside this interpreter.
COMMAND = Path(sys.executable).parent / "automateos"
LOG = {"id": "note", "type": "log", "params": {"message": "got {{ trigger.body }}"}}


@dataclass
class Cli:
    """Runs `automateos` in a subprocess with its own config folder and the stack's URLs."""

    env: dict[str, str]
    config_dir: Path

    def __call__(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(COMMAND), *args],
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, *args: str, **kwargs: dict[str, str]) -> str:
        done = self(*args, **kwargs)  # type: ignore[arg-type]
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(COMMAND), *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def cli_env(stack: Stack, config_home: Path) -> dict[str, str]:
    # The tests' own AUTOMATEOS_* service settings must not leak into the command.
    env = {key: value for key, value in os.environ.items() if not key.startswith("AUTOMATEOS_")}
    env.pop("NO_COLOR", None)
    return {
        **env,
        "XDG_CONFIG_HOME": str(config_home),
        "AUTOMATEOS_AUTH_URL": stack.url("auth"),
        "AUTOMATEOS_API_URL": stack.url("workflows"),
        "AUTOMATEOS_INGEST_URL": stack.url("ingest"),
    }


@pytest.fixture
def cli(stack: Stack, user: ApiUser, tmp_path: Path) -> Cli:
    """The command, logged in as a fresh user."""
    env = cli_env(stack, tmp_path / "config")
    runner = Cli(env, tmp_path / "config" / "automateos")
    runner.ok("login", env={"AUTOMATEOS_EMAIL": user.email, "AUTOMATEOS_PASSWORD": user.password})
    return runner


@pytest.fixture
def client(stack: Stack, user: ApiUser) -> Iterator[Client]:
    with Client(auth_url=stack.url("auth"), api_url=stack.url("workflows")) as started:
        started.login(user.email, user.password)
        yield started


@pytest.fixture(scope="session")
def echo() -> Iterator[LocalServer]:
    with running_server() as server:
        yield server
