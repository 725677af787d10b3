"""The graph: parallel branches (`after`), joins (`join`), skips along `after` edges."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_steps,
    run_job,
    wait_run,
)


@pytest.fixture(scope="module")
def shared_env(shared_env: dict[str, str]) -> dict[str, str]:
    # Every delay parks: the park-in-a-branch test waits 1 s, not 5. Two nodes of a run at
    # once (default 8), so the limit shows with four branches.
    return {
        **shared_env,
        "AUTOMATEOS_WORKER_PARK_AFTER_SECONDS": "0",
        "AUTOMATEOS_RUN_MAX_PARALLEL": "2",
    }


def _slow(api: LocalApi, name: str, ms: int, **extra: Any) -> dict[str, Any]:
    return {"type": "http_request", "params": {"url": api.url(f"/slow/{name}?ms={ms}")}, **extra}


def _statuses(steps: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(s["node_id"], s["status"]) for s in steps]


class TestParallel:
    async def test_two_branches_of_one_second_each_take_one_second(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {"id": "start", "type": "transform", "params": {"values": {"go": True}}},
            {"id": "crm", **_slow(api, "crm-par", 1000, after=["start"])},
            {"id": "billing", **_slow(api, "billing-par", 1000, after=["start"])},
            {
                "id": "merge",
                "type": "transform",
                "after": ["crm", "billing"],
                "params": {
                    "values": {
                        "both": "{{ [steps.crm.body.slept_ms, steps.billing.body.slept_ms] }}"
                    }
                },
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow)))
        assert run["status"] == "succeeded", run
        # Both 1 s calls at once: about 1 s, well under the 2 s of one after the other.
        assert run["duration_ms"] < 1700, run["duration_ms"]
        steps = await fetch_steps(db, str(run["id"]))
        assert _statuses(steps) == [
            ("start", "succeeded"),
            ("crm", "succeeded"),
            ("billing", "succeeded"),
            ("merge", "succeeded"),
        ]
        assert steps[3]["output"] == {"both": [1000, 1000]}
        crm, billing = steps[1]["started_at"], steps[2]["started_at"]
        assert abs((crm - billing).total_seconds()) < 0.3

    async def test_at_most_run_max_parallel_nodes_of_a_run_at_once(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [{"id": f"b{n}", **_slow(api, "par-limit", 200, after=[])} for n in range(4)]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow)))
        assert run["status"] == "succeeded", run
        assert api.peak["/slow/par-limit"] == 2
        assert len(api.hits_for("/slow/par-limit")) == 4

    async def test_join_any_starts_after_the_first_branch_that_ran(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {"id": "slow", **_slow(api, "any-slow", 800, after=[])},
            {"id": "fast", **_slow(api, "any-fast", 50, after=[])},
            {
                "id": "first",
                "type": "transform",
                "after": ["slow", "fast"],
                "join": "any",
                "params": {"values": {"slow_done": "{{ 'slow' in steps }}"}},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow)))
        assert run["status"] == "succeeded", run
        steps = await fetch_steps(db, str(run["id"]))
        assert _statuses(steps) == [
            ("slow", "succeeded"),
            ("fast", "succeeded"),
            ("first", "succeeded"),
        ]
        assert steps[2]["output"] == {"slow_done": False}
        # It did not wait for the 800 ms branch.
        assert steps[2]["started_at"] < steps[0]["started_at"] + timedelta(milliseconds=700)


class TestSkips:
    async def test_an_if_on_a_branch_skips_the_branch_and_the_join_still_runs(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {"id": "check", "type": "transform", "params": {"values": {"vip": False}}},
            {
                "id": "vip_mail",
                "type": "http_request",
                "after": ["check"],
                "if": "{{ steps.check.vip }}",
                "params": {"method": "POST", "url": api.url("/vip/skip-branch")},
            },
            {
                "id": "vip_log",
                "type": "http_request",
                "after": ["vip_mail"],
                "params": {"method": "POST", "url": api.url("/vip-log/skip-branch")},
            },
            {
                "id": "plain",
                "type": "transform",
                "after": ["check"],
                "params": {"values": {"sent": "plain"}},
            },
            {
                "id": "join",
                "type": "transform",
                "after": ["vip_log", "plain"],
                "params": {"values": {"vip": "{{ steps.vip_log }}", "plain": "{{ steps.plain }}"}},
            },
            {
                "id": "both_skipped",
                "type": "transform",
                "after": ["vip_mail", "vip_log"],
                "params": {"values": {}},
            },
            # List order (no `after`): follows `both_skipped` but is not skipped with it.
            {"id": "listed", "type": "transform", "params": {"values": {"ran": True}}},
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow)))
        assert run["status"] == "succeeded", run
        steps = {s["node_id"]: s for s in await fetch_steps(db, str(run["id"]))}
        assert steps["vip_mail"]["status"] == "skipped"
        assert "condition" in steps["vip_mail"]["error"]
        assert steps["vip_log"]["status"] == "skipped"
        assert steps["vip_log"]["error"] == (
            "skipped: every node it runs after was skipped (vip_mail)"
        )
        assert steps["join"]["status"] == "succeeded"
        assert steps["join"]["output"] == {"vip": None, "plain": {"sent": "plain"}}
        assert steps["both_skipped"]["status"] == "skipped"
        assert steps["listed"]["status"] == "succeeded"
        assert api.hits_for("/vip/skip-branch") == []
        assert api.hits_for("/vip-log/skip-branch") == []

    async def test_a_failed_branch_fails_the_run_and_nothing_after_it_starts(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {
                "id": "bad",
                "type": "http_request",
                "after": [],
                "params": {"url": api.url("/status/404")},
            },
            {"id": "slow", **_slow(api, "fail-branch", 300, after=[])},
            {
                "id": "after_bad",
                "type": "http_request",
                "after": ["bad", "slow"],
                "params": {"method": "POST", "url": api.url("/after-bad/fail-branch")},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run = await wait_run(db, await queue.put(run_job(workflow)))
        assert run["status"] == "failed"
        assert run["error"].startswith("node 'bad' (http_request) failed")
        steps = {s["node_id"]: s for s in await fetch_steps(db, str(run["id"]))}
        # The branch already running when `bad` failed finished and was recorded.
        assert steps["slow"]["status"] == "succeeded"
        assert steps["after_bad"]["status"] == "skipped"
        assert steps["after_bad"]["error"] == "skipped: node 'bad' failed"
        assert api.hits_for("/after-bad/fail-branch") == []
        assert steps["slow"]["output"]["body"] == {"slept_ms": 300}


class TestParkInAGraph:
    async def test_a_branch_that_parks_parks_the_run_and_the_graph_goes_on_after(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes = [
            {
                "id": "notify",
                "type": "http_request",
                "after": [],
                "params": {"method": "POST", "url": api.url("/notify/graph-park")},
            },
            {"id": "wait", "type": "delay", "after": [], "params": {"seconds": 1}},
            {
                "id": "done",
                "type": "transform",
                "after": ["notify", "wait"],
                "params": {
                    "values": {"waited": "{{ steps.wait }}", "sent": "{{ steps.notify.status }}"}
                },
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await queue.put(run_job(workflow))
        await wait_run(db, run_id, ("waiting",))
        run = await wait_run(db, run_id, timeout=20)
        assert (run["status"], run["attempt"]) == ("succeeded", 2), run
        steps = await fetch_steps(db, run_id)
        assert _statuses(steps) == [
            ("notify", "succeeded"),
            ("wait", "succeeded"),
            ("done", "succeeded"),
        ]
        assert steps[2]["output"] == {"waited": {"waited_s": 1}, "sent": 200}
        # The branch that ran before the park was reused by the resumed delivery.
        assert len(api.hits_for("/notify/graph-park")) == 1
