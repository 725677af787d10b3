"""Sub-workflows (`call_workflow`) and error workflows (`on_error`) over the real stack."""

from __future__ import annotations

import secrets
import time
from typing import Any

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.shared.nodes.local_http import LocalServer


def _named(user: ApiUser, name: str, nodes: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    with user.client("workflows") as api:
        response = api.post("/workflows", json={"name": name, "nodes": nodes, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _run(user: ApiUser, workflow: dict[str, Any], body: Any = None) -> str:
    with user.client("workflows") as api:
        accepted = api.post(f"/workflows/{workflow['id']}/run", json=body)
    assert accepted.status_code == 202, accepted.text
    run_id: str = accepted.json()["run_id"]
    return run_id


def _get(user: ApiUser, run_id: str) -> dict[str, Any]:
    with user.client("workflows") as api:
        response = api.get(f"/runs/{run_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _runs_of(user: ApiUser, workflow: dict[str, Any]) -> list[dict[str, Any]]:
    with user.client("workflows") as api:
        response = api.get(f"/workflows/{workflow['id']}/runs")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def _doubler(user: ApiUser) -> dict[str, Any]:
    return _named(
        user,
        f"double-{secrets.token_hex(4)}",
        [
            {
                "id": "double",
                "type": "transform",
                "params": {"values": {"n": "{{ trigger.body.n * 2 }}"}},
            }
        ],
    )


class TestCallWorkflow:
    def test_the_parent_waits_and_gets_the_childs_last_output(self, user: ApiUser) -> None:
        child = _doubler(user)
        parent = create_workflow(
            user,
            [
                {
                    "id": "call",
                    "type": "call_workflow",
                    "params": {"workflow": child["name"], "input": {"n": "{{ trigger.body.n }}"}},
                },
                {
                    "id": "after",
                    "type": "transform",
                    "params": {"values": {"got": "{{ steps.call.output.n }}"}},
                },
            ],
        )
        run = wait_for_run(user, _run(user, parent, {"n": 21}))
        assert run["status"] == "succeeded", run
        call, after = run["steps"]
        child_run_id = call["child_run_id"]
        assert call["output"] == {
            "run_id": child_run_id,
            "status": "succeeded",
            "output": {"n": 42},
        }
        assert after["output"] == {"got": 42}
        child_run = _get(user, child_run_id)
        assert child_run["parent_run_id"] == run["id"]
        assert child_run["workflow_id"] == child["id"]
        assert child_run["trigger"]["body"] == {"n": 21}
        assert run["parent_run_id"] is None

    def test_without_wait_the_step_outputs_the_child_run_id_at_once(
        self, user: ApiUser, echo: LocalServer
    ) -> None:
        path = f"/echo/late-{secrets.token_hex(4)}"
        child = _named(
            user,
            f"late-{secrets.token_hex(4)}",
            [
                {"id": "pause", "type": "delay", "params": {"seconds": 1}},
                {
                    "id": "ping",
                    "type": "http_request",
                    "params": {"method": "POST", "url": echo.url(path)},
                },
            ],
        )
        parent = create_workflow(
            user,
            [
                {
                    "id": "fire",
                    "type": "call_workflow",
                    "params": {"workflow": child["id"], "wait": False},
                }
            ],
        )
        run = wait_for_run(user, _run(user, parent))
        assert run["status"] == "succeeded", run
        [fire] = run["steps"]
        assert fire["output"] == {"run_id": fire["child_run_id"]}
        # The parent did not wait: the child's effect comes after the parent ended.
        assert echo.hits.count(path) == 0
        child_run = wait_for_run(user, fire["child_run_id"])
        assert child_run["status"] == "succeeded"
        assert child_run["parent_run_id"] == run["id"]
        assert echo.hits.count(path) == 1

    def test_a_failed_child_fails_the_step(self, user: ApiUser, echo: LocalServer) -> None:
        child = _named(
            user,
            f"broken-{secrets.token_hex(4)}",
            [
                {
                    "id": "boom",
                    "type": "http_request",
                    "params": {"method": "GET", "url": echo.url("/status/500")},
                }
            ],
        )
        parent = create_workflow(
            user,
            [
                {"id": "call", "type": "call_workflow", "params": {"workflow": child["name"]}},
                {"id": "never", "type": "log", "params": {"message": "not reached"}},
            ],
        )
        run = wait_for_run(user, _run(user, parent))
        assert run["status"] == "failed", run
        call, never = run["steps"]
        assert call["status"] == "failed"
        assert call["output"]["status"] == "failed"
        assert call["child_run_id"] in call["error"]
        assert never["status"] == "skipped"
        assert _get(user, call["child_run_id"])["status"] == "failed"

    def test_a_cancelled_parked_child_fails_the_waiting_step(self, user: ApiUser) -> None:
        child = _named(
            user,
            f"slow-{secrets.token_hex(4)}",
            # Past the worker's 5 s park threshold: the child parks too.
            [{"id": "pause", "type": "delay", "params": {"seconds": 6}}],
        )
        parent = create_workflow(
            user, [{"id": "call", "type": "call_workflow", "params": {"workflow": child["id"]}}]
        )
        run_id = _run(user, parent)
        end = time.monotonic() + 15
        child_run_id = None
        while time.monotonic() < end:
            step = (_get(user, run_id)["steps"] or [{}])[0]
            child_run_id = step.get("child_run_id")
            if child_run_id and _get(user, child_run_id)["status"] == "waiting":
                break
            time.sleep(0.1)
        assert child_run_id is not None
        with user.client("workflows") as api:
            assert api.post(f"/runs/{child_run_id}/cancel").status_code == 200
        run = wait_for_run(user, run_id, deadline_s=20)
        assert run["status"] == "failed", run
        assert run["steps"][0]["output"]["status"] == "cancelled"
        assert f"child run {child_run_id} cancelled" in run["steps"][0]["error"]

    def test_nesting_deeper_than_ten_is_a_step_error(self, user: ApiUser) -> None:
        name = f"recurse-{secrets.token_hex(4)}"
        recurse = _named(
            user,
            name,
            [
                {
                    "id": "deeper",
                    "type": "call_workflow",
                    # Templated: checked when the step runs, not at save.
                    "params": {
                        "workflow": "{{ trigger.body.name }}",
                        "input": {"name": "{{ trigger.body.name }}"},
                    },
                }
            ],
        )
        top = wait_for_run(user, _run(user, recurse, {"name": name}), deadline_s=60)
        assert top["status"] == "failed", top
        chain = [top]
        for _ in range(12):
            child_run_id = chain[-1]["steps"][0]["child_run_id"]
            if child_run_id is None:
                break
            chain.append(_get(user, child_run_id))
        # The top run and ten nested children; the tenth cannot start an eleventh.
        assert len(chain) == 11
        deepest = chain[-1]["steps"][0]
        assert deepest["status"] == "failed"
        assert "nested more than 10 deep" in deepest["error"]
        assert [run["parent_run_id"] for run in chain[1:]] == [run["id"] for run in chain[:-1]]

    def test_another_users_workflow_cannot_be_called(
        self, user: ApiUser, other_user: ApiUser
    ) -> None:
        theirs = _doubler(other_user)
        for reference in (theirs["id"], theirs["name"]):
            with user.client("workflows") as api:
                refused = api.post(
                    "/workflows",
                    json={
                        "name": "thief",
                        "nodes": [
                            {
                                "id": "call",
                                "type": "call_workflow",
                                "params": {"workflow": reference},
                            }
                        ],
                    },
                )
            assert refused.status_code == 422, refused.text
            [issue] = refused.json()["detail"]
            assert issue["loc"] == ["body", "nodes", "call", "params", "workflow"]
        with user.client("workflows") as api:
            refused = api.post(
                "/workflows", json={"name": "x", "nodes": [], "on_error": theirs["id"]}
            )
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "on_error"]
        # A templated name is looked up when the step runs: among the caller's workflows only.
        templated = create_workflow(
            user,
            [
                {
                    "id": "call",
                    "type": "call_workflow",
                    "params": {"workflow": "{{ trigger.body.w }}"},
                }
            ],
        )
        run = wait_for_run(user, _run(user, templated, {"w": theirs["id"]}))
        assert run["status"] == "failed"
        assert "of yours" in run["steps"][0]["error"]
        assert run["steps"][0]["child_run_id"] is None
        assert _runs_of(other_user, theirs) == []


def _wait_runs(
    user: ApiUser, workflow: dict[str, Any], count: int, deadline_s: float = 15
) -> list[dict[str, Any]]:
    end = time.monotonic() + deadline_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < end:
        runs = _runs_of(user, workflow)
        if len(runs) >= count and all(r["status"] in ("succeeded", "failed") for r in runs):
            return runs
        time.sleep(0.1)
    raise AssertionError(f"expected {count} ended runs of {workflow['name']}, got {runs}")


class TestErrorWorkflows:
    def test_a_failed_run_starts_exactly_one_run_of_its_error_workflow(
        self, user: ApiUser, echo: LocalServer
    ) -> None:
        handler = _named(
            user,
            f"on-call-{secrets.token_hex(4)}",
            [
                {
                    "id": "note",
                    "type": "transform",
                    "params": {"values": {"got": "{{ trigger.body }}"}},
                }
            ],
        )
        failing = _named(
            user,
            f"fragile-{secrets.token_hex(4)}",
            [
                {"id": "fine", "type": "log", "params": {"message": "ok"}},
                {
                    "id": "boom",
                    "type": "http_request",
                    "params": {"method": "GET", "url": echo.url("/status/500")},
                },
            ],
            on_error=handler["name"],
        )
        assert failing["on_error"] == handler["name"]
        failed = wait_for_run(user, _run(user, failing))
        assert failed["status"] == "failed"
        [handled] = _wait_runs(user, handler, 1)
        time.sleep(1)  # nothing else is on its way
        assert len(_runs_of(user, handler)) == 1
        run = _get(user, handled["id"])
        assert run["status"] == "succeeded"
        body = run["trigger"]["body"]
        assert body == {
            "run_id": failed["id"],
            "workflow_id": failing["id"],
            "workflow_name": failing["name"],
            "failed_step": "boom",
            "error": failed["error"],
            "attempt": failed["attempt"],
        }
        assert run["steps"][0]["output"] == {"got": body}
        # A run that succeeds starts nothing.
        with user.client("workflows") as api:
            fixed = api.patch(f"/workflows/{failing['id']}", json={"nodes": failing["nodes"][:1]})
        assert fixed.status_code == 200, fixed.text
        assert wait_for_run(user, _run(user, failing))["status"] == "succeeded"
        time.sleep(0.5)
        assert len(_runs_of(user, handler)) == 1

    def test_a_failing_error_workflow_never_starts_another(
        self, user: ApiUser, echo: LocalServer
    ) -> None:
        path = f"/echo/last-resort-{secrets.token_hex(4)}"
        last_resort = _named(
            user,
            f"last-resort-{secrets.token_hex(4)}",
            [
                {
                    "id": "page",
                    "type": "http_request",
                    "params": {"method": "POST", "url": echo.url(path)},
                }
            ],
        )
        broken_handler = _named(
            user,
            f"broken-handler-{secrets.token_hex(4)}",
            [
                {
                    "id": "boom",
                    "type": "http_request",
                    "params": {"method": "GET", "url": echo.url("/status/500")},
                }
            ],
            on_error=last_resort["id"],
        )
        failing = _named(
            user,
            f"fragile-{secrets.token_hex(4)}",
            [
                {
                    "id": "boom",
                    "type": "http_request",
                    "params": {"method": "GET", "url": echo.url("/status/500")},
                }
            ],
            on_error=broken_handler["id"],
        )
        assert wait_for_run(user, _run(user, failing))["status"] == "failed"
        [handled] = _wait_runs(user, broken_handler, 1)
        assert handled["status"] == "failed"
        time.sleep(1)
        assert _runs_of(user, last_resort) == []
        assert echo.hits.count(path) == 0
        # Run on its own (not as an error workflow), its failure does start its error workflow.
        assert wait_for_run(user, _run(user, broken_handler))["status"] == "failed"
        _wait_runs(user, last_resort, 1)
        assert echo.hits.count(path) == 1
