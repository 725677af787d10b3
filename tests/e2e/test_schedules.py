"""A schedule trigger end to end: the worker supervisor's scheduler starts runs that see
`trigger.scheduled_at`, and deactivating the workflow stops them within a second."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scripts.localinfra import stop_process
from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess, Stack
from tests.services.worker.harness import start_worker, worker_env


@pytest.fixture
def scheduling_worker(stack: Stack, infra: Infra, tmp_path: Path) -> Iterator[ServiceProcess]:
    """A worker with its scheduler on (the stack's own has it off)."""
    env = worker_env(
        infra.database_url,
        infra.redis_url,
        Path(stack.env["AUTOMATEOS_DATA_DIR"]),
        AUTOMATEOS_SCHEDULER_ENABLED="true",
    )
    worker = start_worker(env, tmp_path)
    yield worker
    stop_process(worker.proc, timeout=20)


def _runs(user: ApiUser, workflow_id: str) -> list[dict[str, Any]]:
    with user.client("workflows") as api:
        items = api.get(f"/workflows/{workflow_id}/runs", params={"limit": 100}).json()["items"]
        return [api.get(f"/runs/{item['id']}").json() for item in items]


class TestScheduledRuns:
    def test_ticks_run_until_the_workflow_is_deactivated(
        self, user: ApiUser, scheduling_worker: ServiceProcess
    ) -> None:
        workflow = create_workflow(
            user,
            [{"id": "note", "type": "log", "params": {"message": "{{ trigger.scheduled_at }}"}}],
            trigger={"type": "schedule", "every": "1s"},
        )
        deadline = time.monotonic() + 15
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(runs) < 2:
            runs = [run for run in _runs(user, workflow["id"]) if run["status"] == "succeeded"]
            time.sleep(0.3)
        assert len(runs) >= 2, scheduling_worker.log_tail()
        run = runs[0]
        scheduled = datetime.fromisoformat(run["trigger"]["scheduled_at"])
        assert scheduled.microsecond == 0
        assert run["steps"][0]["output"]["message"] == run["trigger"]["scheduled_at"]

        with user.client("workflows") as api:
            off = api.patch(f"/workflows/{workflow['id']}", json={"active": False})
        assert off.status_code == 200
        stopped_at = datetime.now(UTC)
        time.sleep(3)
        ticks = [
            datetime.fromisoformat(run["trigger"]["scheduled_at"])
            for run in _runs(user, workflow["id"])
        ]
        assert max(ticks) <= stopped_at + timedelta(seconds=1)
