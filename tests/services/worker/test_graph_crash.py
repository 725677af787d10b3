"""SIGKILL in the middle of a for-each and of parallel branches: no finished effect repeats."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    start_worker,
    wait_run,
    worker_env,
)
from tests.services.worker.test_checkpoints import FAST_RECOVERY, _worker_pids_running


# One worker for the module: its supervisor restarts the processes a test kills.
@pytest.fixture(scope="module")
def env(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("graph-crash-data")
    return worker_env(infra.database_url, infra.redis_url, data, **FAST_RECOVERY)


@pytest.fixture(scope="module")
def two_processes(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("graph-crash-logs")
    service = start_worker(env, logs, processes=2, concurrency=16)
    yield service
    stop_process(service.proc, timeout=30)


async def _until(condition: Any, what: str, deadline_s: float = 20) -> None:
    for _ in range(int(deadline_s / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reached in {deadline_s}s: {what}")


def _kill(infra: Infra, run_ids: list[str]) -> None:
    for pid in _worker_pids_running(infra.redis_url, run_ids):
        os.kill(pid, signal.SIGKILL)


class TestCrashes:
    async def test_sigkill_mid_for_each_repeats_only_items_in_flight(
        self,
        db: AsyncEngine,
        infra: Infra,
        api: LocalApi,
        two_processes: ServiceProcess,
        jobs: Queue,
    ) -> None:
        concurrency = 4
        nodes = [
            {
                "id": "ship",
                "type": "http_request",
                "for_each": "{{ trigger.body.ids }}",
                "concurrency": concurrency,
                "params": {"method": "POST", "url": api.url("/slow/kill-each-{{ item }}?ms=40")},
            },
            {
                "id": "done",
                "type": "http_request",
                "params": {"method": "POST", "url": api.url("/kill-each-done")},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await jobs.put(run_job(workflow, {"ids": list(range(200))}))
        await _until(lambda: len(api.hits_for_prefix("/slow/kill-each-")) >= 60, "60 items")
        _kill(infra, [run_id])

        run = await wait_run(db, run_id, timeout=60)
        assert (run["status"], run["attempt"]) == ("succeeded", 2), run
        counts = Counter(hit.path for hit in api.hits_for_prefix("/slow/kill-each-"))
        assert set(counts) == {f"/slow/kill-each-{n}" for n in range(200)}
        # Only the items in flight at the kill (at most `concurrency`) ran twice.
        repeated = [path for path, count in counts.items() if count > 1]
        assert len(repeated) <= concurrency, repeated
        assert max(counts.values()) <= 2
        assert len(api.hits_for("/kill-each-done")) == 1
        steps = await fetch_steps(db, run_id)
        assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
        assert len(steps[0]["output"]) == 200

    async def test_sigkill_mid_parallel_branches_repeats_no_finished_branch(
        self,
        db: AsyncEngine,
        infra: Infra,
        api: LocalApi,
        two_processes: ServiceProcess,
        jobs: Queue,
    ) -> None:
        def call(path: str, after: list[str]) -> dict[str, Any]:
            return {
                "type": "http_request",
                "after": after,
                "params": {"method": "POST", "url": api.url(path + "/{{ trigger.body.n }}")},
            }

        nodes = [
            {"id": "crm", **call("/kill-par/crm", [])},
            {"id": "billing", **call("/kill-par/billing", [])},
            {"id": "crm_wait", **call("/slow/kill-par-crm?ms=2500&", ["crm"])},
            {"id": "billing_wait", **call("/slow/kill-par-billing?ms=2500&", ["billing"])},
            {"id": "merge", **call("/kill-par/merge", ["crm_wait", "billing_wait"])},
        ]
        # The query string takes the run number for the slow calls (the path stays the same).
        for node in nodes[2:4]:
            node["params"]["url"] = node["params"]["url"].replace("&/", "&n=")
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_ids = [await jobs.put(run_job(workflow, {"n": n})) for n in range(4)]
        await _until(
            lambda: len(api.hits_for_prefix("/slow/kill-par-")) == 8, "every slow call started"
        )
        await asyncio.sleep(0.3)
        _kill(infra, run_ids)

        runs = [await wait_run(db, run_id, timeout=60) for run_id in run_ids]
        assert {(run["status"], run["attempt"]) for run in runs} == {("succeeded", 2)}, runs
        for n in range(4):
            # Finished before the kill, or after it: exactly once.
            for name in ("crm", "billing", "merge"):
                assert len(api.hits_for(f"/kill-par/{name}/{n}")) == 1, (name, n)
        # In flight at the kill: the two effects that ran again (once per delivery).
        for name in ("crm", "billing"):
            assert len(api.hits_for(f"/slow/kill-par-{name}")) == 8
        for run_id in run_ids:
            steps = await fetch_steps(db, run_id)
            assert {s["status"] for s in steps} == {"succeeded"}
