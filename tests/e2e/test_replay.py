"""Replays (`POST /runs/{id}/replay`) and pinned input (`from_run`) over the real stack.

A local server counts the requests of each effectful step: a replay must not send again what
a step before `from_step` sent.
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, wait_for_run
from tests.shared.nodes.local_http import LocalServer


def _post(user: ApiUser, path: str, body: Any = None) -> tuple[int, Any]:
    with user.client("workflows") as api:
        response = api.post(path, json=body)
    return response.status_code, response.json()


def _replay(user: ApiUser, run_id: str, body: Any = None) -> dict[str, Any]:
    status, accepted = _post(user, f"/runs/{run_id}/replay", body)
    assert status == 202, accepted
    return wait_for_run(user, accepted["run_id"])


def _effects(echo: LocalServer, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "charge",
            "type": "http_request",
            "params": {
                "method": "POST",
                "url": echo.url(f"/echo/{tag}-charge"),
                "json": {"n": "{{ trigger.body.n }}"},
            },
        },
        {"id": "shape", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}},
        {
            "id": "notify",
            "type": "http_request",
            "params": {
                "method": "POST",
                "url": echo.url(f"/echo/{tag}-notify"),
                "json": {"n": "{{ steps.shape.n }}"},
            },
        },
    ]


class TestReplay:
    def test_steps_before_from_step_are_reused_not_executed(
        self, user: ApiUser, echo: LocalServer
    ) -> None:
        tag = secrets.token_hex(4)
        workflow = create_workflow(user, _effects(echo, tag))
        status, accepted = _post(user, f"/workflows/{workflow['id']}/run", {"n": 7})
        assert status == 202
        original = wait_for_run(user, accepted["run_id"])
        assert original["status"] == "succeeded"
        assert echo.hits.count(f"/echo/{tag}-charge") == 1

        replayed = _replay(user, original["id"], {"from_step": "notify"})
        assert replayed["status"] == "succeeded", replayed
        assert replayed["replay_of"] == original["id"]
        assert replayed["id"] != original["id"]
        # `charge` ran once in all; `notify` (from_step) ran again, with the same input.
        assert echo.hits.count(f"/echo/{tag}-charge") == 1
        assert echo.hits.count(f"/echo/{tag}-notify") == 2
        assert replayed["steps"][0]["output"] == original["steps"][0]["output"]
        assert replayed["steps"][2]["output"]["body"]["path"] == f"/echo/{tag}-notify"
        assert replayed["trigger"]["body"] == {"n": 7}

        # Without from_step, everything runs anew.
        again = _replay(user, original["id"])
        assert again["status"] == "succeeded"
        assert again["replay_of"] == original["id"]
        assert echo.hits.count(f"/echo/{tag}-charge") == 2
        assert echo.hits.count(f"/echo/{tag}-notify") == 3

    def test_version_original_or_current(self, user: ApiUser, echo: LocalServer) -> None:
        tag = secrets.token_hex(4)
        workflow = create_workflow(user, _effects(echo, tag))
        status, accepted = _post(user, f"/workflows/{workflow['id']}/run", {"n": 1})
        assert status == 202
        original = wait_for_run(user, accepted["run_id"])
        assert original["status"] == "succeeded"
        changed = _effects(echo, tag)
        changed[2]["params"]["url"] = echo.url(f"/echo/{tag}-notify-v2")
        with user.client("workflows") as api:
            updated = api.put(
                f"/workflows/{workflow['id']}", json={"name": "e2e", "nodes": changed}
            )
        assert updated.status_code == 200, updated.text

        on_original = _replay(user, original["id"], {"from_step": "notify", "version": "original"})
        assert on_original["workflow_version"] == original["workflow_version"]
        assert echo.hits.count(f"/echo/{tag}-notify") == 2
        on_current = _replay(user, original["id"], {"from_step": "notify", "version": "current"})
        assert on_current["workflow_version"] == updated.json()["version"]
        assert echo.hits.count(f"/echo/{tag}-notify-v2") == 1
        # Both reused the recorded charge.
        assert echo.hits.count(f"/echo/{tag}-charge") == 1

    def test_bad_requests(self, user: ApiUser, other_user: ApiUser, echo: LocalServer) -> None:
        workflow = create_workflow(
            user, [{"id": "only", "type": "log", "params": {"message": "x"}}]
        )
        status, accepted = _post(user, f"/workflows/{workflow['id']}/run")
        run = wait_for_run(user, accepted["run_id"])
        status, body = _post(user, f"/runs/{run['id']}/replay", {"from_step": "nope"})
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", "from_step"]
        status, body = _post(user, f"/runs/{run['id']}/replay", {"version": "newest"})
        assert status == 422
        status, _ = _post(other_user, f"/runs/{run['id']}/replay")
        assert status == 404


class TestFromRun:
    def test_a_past_runs_body_is_the_new_runs_input(
        self, user: ApiUser, other_user: ApiUser
    ) -> None:
        source = create_workflow(user, [{"id": "only", "type": "log", "params": {"message": "x"}}])
        status, accepted = _post(user, f"/workflows/{source['id']}/run", {"order": 42})
        past = wait_for_run(user, accepted["run_id"])
        target = create_workflow(
            user,
            [
                {
                    "id": "echo",
                    "type": "transform",
                    "params": {"values": {"order": "{{ trigger.body.order }}"}},
                }
            ],
        )
        status, accepted = _post(user, f"/workflows/{target['id']}/run", {"from_run": past["id"]})
        assert status == 202
        run = wait_for_run(user, accepted["run_id"])
        assert run["trigger"]["body"] == {"order": 42}
        assert run["steps"][0]["output"] == {"order": 42}

        # Someone else's run is not found; a bad id is named.
        theirs = create_workflow(
            other_user, [{"id": "only", "type": "log", "params": {"message": "x"}}]
        )
        status, body = _post(other_user, f"/workflows/{theirs['id']}/run", {"from_run": past["id"]})
        assert status == 404, body
        status, body = _post(user, f"/workflows/{target['id']}/run", {"from_run": "not-an-id"})
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", "from_run"]
