"""Schemathesis over every HTTP service's OpenAPI, as a logged-in user: no input is a 5xx.

It generates examples, boundary values and random (valid and invalid) requests for every
operation each service documents, and fails on any 5xx answer. Path ids are random in one pass
(so every operation, DELETE included, meets unknown ids) and, for the workflows service, the
user's real workflow and run in a second pass, so bodies reach the logic behind the 404 checks.
`make fuzz-api` runs only this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.localinfra import free_port, stop_process
from tests.conftest import ApiUser, register_user
from tests.fixtures.stack import ServiceProcess, Stack, start_service, wait_ready

# Per operation and pass; the coverage phase adds its boundary values on top. This keeps the
# sweep near a minute and a half on the 2-core CI machine; AUTOMATEOS_FUZZ_EXAMPLES=200 (say)
# runs a deeper one locally.
EXAMPLES = int(os.environ.get("AUTOMATEOS_FUZZ_EXAMPLES", "10"))
# AUTOMATEOS_FUZZ_PHASES=examples,coverage,fuzzing,stateful adds sequences of calls (slower).
PHASES = os.environ.get("AUTOMATEOS_FUZZ_PHASES", "examples,coverage,fuzzing")
SEED = 20261129
# NUL characters in generated strings: PostgreSQL refuses them, so they are what finds 500s.
GENERATION = "[generation]\nallow-x00 = true\n\n"


def _schemathesis() -> str:
    path = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert path is not None, "schemathesis is not installed (make install)"
    return path


@pytest.fixture(scope="module")
def fuzzed_auth(stack: Stack, stack_dir: Path) -> Iterator[ServiceProcess]:
    """An auth process of its own for the sweep: hundreds of failed logins would otherwise lock
    every later test's logins out of the session's auth (its limiter counts per client)."""
    port = free_port()
    redis_url = stack.env["REDIS_URL"].rsplit("/", 1)[0] + "/1"  # its own limiter counters
    env = {**stack.env, "REDIS_URL": redis_url, "AUTOMATEOS_LOGIN_MAX_FAILURES": "1000000"}
    log_dir = stack_dir / f"fuzzed-auth-{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    service = start_service("auth", ["--port", str(port)], port, env, log_dir)
    try:
        wait_ready(service)
        yield service
    finally:
        stop_process(service.proc, timeout=20)


def _run(
    target: ServiceProcess,
    user: ApiUser,
    folder: Path,
    *extra: str,
    parameters: dict[str, str] | None = None,
) -> None:
    config = folder / "schemathesis.toml"
    fixed = "".join(f"{json.dumps(k)} = {json.dumps(v)}\n" for k, v in (parameters or {}).items())
    config.write_text(GENERATION + (f"[parameters]\n{fixed}" if fixed else ""))
    done = subprocess.run(
        [
            _schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{target.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            PHASES,
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            str(SEED),
            # One worker: hypothesis parses lambda sources with `ast`, which is not thread-safe
            # on Python 3.11 (a SystemError inside schemathesis with two).
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-shrink",
            "--continue-on-failure",
            "--suppress-health-check",
            "all",
            "--header",
            f"Authorization: Bearer {user.tokens['access_token']}",
            "--report",
            "junit",
            "--report-dir",
            str(folder),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=folder,  # its .hypothesis and .schemathesis caches stay out of the checkout
    )
    log = target.log_tail(60)
    assert done.returncode == 0, f"{done.stdout[-10000:]}\n--- {target.name} log ---\n{log}"


def test_no_input_to_auth_is_a_server_error(
    fuzzed_auth: ServiceProcess, stack: Stack, user: ApiUser, tmp_path: Path
) -> None:
    _run(fuzzed_auth, user, tmp_path)
    register_user(stack)  # the session's auth still lets the other tests log in


@pytest.mark.parametrize("service", ["workflows", "ingest"])
def test_no_input_is_a_server_error(
    service: str, stack: Stack, user: ApiUser, tmp_path: Path
) -> None:
    _run(stack.services[service], user, tmp_path)


def _real_ids(user: ApiUser) -> dict[str, str]:
    nodes = [{"id": "note", "type": "log", "params": {"message": "{{ trigger.body }}"}}]
    with user.client("workflows") as api:
        workflow = api.post("/workflows", json={"name": "fuzzed", "nodes": nodes}).json()
        run = api.post(f"/workflows/{workflow['id']}/run", json={"x": 1}).json()
    return {"path.workflow_id": workflow["id"], "path.run_id": run["run_id"]}


def test_no_input_to_a_real_workflow_is_a_server_error(
    stack: Stack, user: ApiUser, tmp_path: Path
) -> None:
    # DELETE would take the workflow away from every operation after it; the random pass above
    # covers DELETE.
    workflows = stack.services["workflows"]
    _run(workflows, user, tmp_path, "--exclude-method", "DELETE", parameters=_real_ids(user))
