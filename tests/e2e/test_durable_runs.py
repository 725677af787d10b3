"""Parked runs over the real API: resume URLs, callbacks through ingest, cancelling."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer


def _wait_status(user: ApiUser, run_id: str, status: str, deadline_s: float = 15) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    last: dict[str, Any] = {}
    with user.client("workflows") as api:
        while time.monotonic() < end:
            last = api.get(f"/runs/{run_id}").json()
            if last["status"] == status:
                return last
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} not {status} in {deadline_s}s: {last}")


def _wait_steps(user: ApiUser, run_id: str, deadline_s: float = 15) -> dict[str, Any]:
    end = time.monotonic() + deadline_s
    last: dict[str, Any] = {}
    with user.client("workflows") as api:
        while time.monotonic() < end:
            last = api.get(f"/runs/{run_id}").json()
            if last["steps"]:
                return last
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} has no steps after {deadline_s}s: {last}")


def _approval_flow(echo: LocalServer, tag: str = "approver") -> list[dict[str, Any]]:
    return [
        {
            "id": "ask",
            "type": "http_request",
            "params": {
                "method": "POST",
                "url": echo.url(f"/echo/{tag}"),
                "json": {"approve_at": "{{ run.resume_url }}"},
            },
        },
        {"id": "approval", "type": "wait_for_callback", "params": {"timeout_s": 3600}},
        {
            "id": "only_if_approved",
            "type": "log",
            "if": "{{ steps.approval.approved }}",
            "params": {"message": "approved by {{ steps.approval.by }}"},
        },
    ]


def _start(stack: Stack, workflow: dict[str, Any], body: Any = None) -> str:
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        accepted = ingest.post(hook_path(workflow), json=body or {})
    assert accepted.status_code == 202, accepted.text
    run_id: str = accepted.json()["run_id"]
    return run_id


class TestCallbacks:
    def test_a_post_to_the_resume_url_resumes_the_run_with_its_body(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        tag = f"approver-{secrets.token_hex(4)}"
        run_id = _start(stack, create_workflow(user, _approval_flow(echo, tag)))
        waiting = _wait_status(user, run_id, "waiting")
        assert waiting["resume_at"] is not None
        ask, approval = waiting["steps"][:2]
        resume_url = approval["output"]["resume_url"]
        # The step before the wait could send it, and did: the same URL.
        assert ask["input"]["json"]["approve_at"] == resume_url
        assert resume_url.startswith(stack.url("ingest") + "/hooks/resume/")
        assert approval["status"] == "waiting"

        with httpx.Client(timeout=10) as client:
            first = client.post(resume_url, json={"approved": True, "by": "ada"})
            assert first.status_code == 202, first.text
            assert first.json() == {"run_id": run_id, "state": "resumed"}
            again = client.post(resume_url, json={"approved": False})
            assert again.status_code == 409
        run = wait_for_run(user, run_id)
        assert run["status"] == "succeeded", run
        statuses = [(s["node_id"], s["status"]) for s in run["steps"]]
        assert statuses == [
            ("ask", "succeeded"),
            ("approval", "succeeded"),
            ("only_if_approved", "succeeded"),
        ]
        assert run["steps"][1]["output"] == {"approved": True, "by": "ada"}
        # The request the wait asked for was sent once, though the run ran in two deliveries.
        assert echo.hits.count(f"/echo/{tag}") == 1

    def test_a_false_condition_skips_the_step_and_the_run_goes_on(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        run_id = _start(stack, create_workflow(user, _approval_flow(echo)))
        resume_url = _wait_status(user, run_id, "waiting")["steps"][1]["output"]["resume_url"]
        assert httpx.post(resume_url, json={"approved": False}, timeout=10).status_code == 202
        run = wait_for_run(user, run_id)
        assert run["status"] == "succeeded"
        skipped = run["steps"][2]
        assert skipped["status"] == "skipped"
        assert "condition" in skipped["error"]

    def test_a_forged_or_malformed_token_is_not_found(self, stack: Stack) -> None:
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            for token in ("x" * 43, "nope", "A" * 64):
                assert ingest.post(f"/hooks/resume/{token}", json={}).status_code == 404

    def test_a_callback_body_that_is_not_json_is_refused(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        run_id = _start(stack, create_workflow(user, _approval_flow(echo)))
        resume_url = _wait_status(user, run_id, "waiting")["steps"][1]["output"]["resume_url"]
        refused = httpx.post(resume_url, content=b"{not json", timeout=10)
        assert refused.status_code == 400
        # Still waiting for a good one.
        assert httpx.post(resume_url, json={"approved": True}, timeout=10).status_code == 202


class TestCancel:
    def test_cancelling_a_waiting_run_ends_it_and_its_callback(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        run_id = _start(stack, create_workflow(user, _approval_flow(echo)))
        resume_url = _wait_status(user, run_id, "waiting")["steps"][1]["output"]["resume_url"]
        with user.client("workflows") as api:
            cancelled = api.post(f"/runs/{run_id}/cancel")
            assert cancelled.status_code == 200, cancelled.text
            assert cancelled.json()["status"] == "cancelled"
            assert api.post(f"/runs/{run_id}/cancel").status_code == 409
        assert httpx.post(resume_url, json={}, timeout=10).status_code == 409
        time.sleep(1.5)
        assert wait_for_run(user, run_id)["status"] == "cancelled"

    def test_a_running_run_stops_at_its_next_step(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        never = f"/echo/never-{secrets.token_hex(4)}"
        nodes = [
            {"id": "first", "type": "delay", "params": {"seconds": 2}},
            {"id": "second", "type": "http_request", "params": {"url": echo.url(never)}},
        ]
        run_id = _start(stack, create_workflow(user, nodes))
        _wait_status(user, run_id, "running")
        with user.client("workflows") as api:
            assert api.post(f"/runs/{run_id}/cancel").status_code == 200
        # `cancelled` at once; the worker adds the steps when its step in progress ends.
        assert wait_for_run(user, run_id)["status"] == "cancelled"
        run = _wait_steps(user, run_id)
        assert run["status"] == "cancelled"
        assert [s["status"] for s in run["steps"]] == ["succeeded", "skipped"]
        assert run["steps"][1]["error"] == "skipped: run cancelled"
        assert never not in echo.hits

    def test_another_users_run_cannot_be_cancelled(
        self, stack: Stack, user: ApiUser, other_user: ApiUser, echo: LocalServer
    ) -> None:
        run_id = _start(stack, create_workflow(user, _approval_flow(echo)))
        _wait_status(user, run_id, "waiting")
        with other_user.client("workflows") as api:
            assert api.post(f"/runs/{run_id}/cancel").status_code == 404
        assert _wait_status(user, run_id, "waiting")["status"] == "waiting"
