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
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ApiUser
from tests.fixtures.stack import Stack

# Per operation and pass; the coverage phase adds its boundary values on top. This keeps the
# sweep near a minute and a half on the 2-core CI machine; AUTOMATEOS_FUZZ_EXAMPLES=200 (say)
# runs a deeper one locally.
EXAMPLES = int(os.environ.get("AUTOMATEOS_FUZZ_EXAMPLES", "10"))
SEED = 20261129
# NUL characters in generated strings: PostgreSQL refuses them, so they are what finds 500s.
GENERATION = "[generation]\nallow-x00 = true\n\n"


def _schemathesis() -> str:
    path = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert path is not None, "schemathesis is not installed (make install)"
    return path


def _sweep(stack: Stack, service: str, user: ApiUser, folder: Path, *extra: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "schemathesis.toml"
    config.write_text(GENERATION)
    _run(stack, service, user, folder, config, *extra)


def _run(
    stack: Stack, service: str, user: ApiUser, folder: Path, config: Path, *extra: str
) -> None:
    done = subprocess.run(
        [
            _schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{stack.url(service)}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,coverage,fuzzing",
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
    log = stack.services[service].log_tail(60)
    assert done.returncode == 0, f"{done.stdout[-10000:]}\n--- {service} log ---\n{log}"


@pytest.mark.parametrize("service", ["auth", "workflows", "ingest"])
def test_no_input_is_a_server_error(
    service: str, stack: Stack, user: ApiUser, tmp_path: Path
) -> None:
    _sweep(stack, service, user, tmp_path)


def _real_ids(user: ApiUser) -> dict[str, Any]:
    nodes = [{"id": "note", "type": "log", "params": {"message": "{{ trigger.body }}"}}]
    with user.client("workflows") as api:
        workflow = api.post("/workflows", json={"name": "fuzzed", "nodes": nodes}).json()
        run = api.post(f"/workflows/{workflow['id']}/run", json={"x": 1}).json()
    return {"path.workflow_id": workflow["id"], "path.run_id": run["run_id"]}


def test_no_input_to_a_real_workflow_is_a_server_error(
    stack: Stack, user: ApiUser, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    parameters = "\n".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in _real_ids(user).items())
    config.write_text(f"{GENERATION}[parameters]\n{parameters}\n")
    # DELETE would take the workflow away from every operation after it; the random pass above
    # covers DELETE.
    _run(stack, "workflows", user, tmp_path, config, "--exclude-method", "DELETE")
