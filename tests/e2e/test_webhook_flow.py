"""Flow B end to end: webhook → 202 → queue → worker → run and steps readable over the API."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time

import httpx

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.database import Database
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer


def _every_core_node(echo: LocalServer) -> list[dict[str, object]]:
    return [
        {
            "id": "only_big",
            "type": "filter",
            "params": {"all": [{"left": "{{ trigger.body.amount }}", "op": "gt", "right": 100}]},
        },
        {
            "id": "post",
            "type": "http_request",
            "params": {
                "method": "POST",
                "url": echo.url("/echo"),
                "json": {"order": "{{ trigger.body.id }}", "amount": "{{ trigger.body.amount }}"},
            },
        },
        {
            "id": "shape",
            "type": "transform",
            "params": {
                "values": {"status": "{{ steps.post.status }}", "id": "{{ trigger.body.id }}"}
            },
        },
        {"id": "pause", "type": "delay", "params": {"seconds": 0.01}},
        {"id": "note", "type": "log", "params": {"message": "order {{ steps.shape.id }} posted"}},
    ]


class TestWebhookToRun:
    def test_every_core_node_runs_and_each_step_is_recorded(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        workflow = create_workflow(user, _every_core_node(echo))
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            accepted = ingest.post(hook_path(workflow), json={"id": "A1", "amount": 150})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert accepted.headers["location"].endswith(f"/runs/{run_id}")

        run = wait_for_run(user, run_id)

        assert run["status"] == "succeeded", run
        assert run["workflow_version"] == workflow["version"]
        steps = run["steps"]
        assert [s["node_id"] for s in steps] == ["only_big", "post", "shape", "pause", "note"]
        assert all(s["status"] == "succeeded" for s in steps)
        sent = json.loads(steps[1]["output"]["body"]["body"])
        assert sent == {"order": "A1", "amount": 150}  # a whole-string template keeps its type
        assert steps[2]["output"] == {"status": 200, "id": "A1"}
        assert all(s["duration_ms"] is not None and s["started_at"] for s in steps)

    def test_run_is_visible_from_the_moment_of_the_202(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        workflow = create_workflow(
            user, [{"id": "wait", "type": "delay", "params": {"seconds": 1}}]
        )
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            run_id = ingest.post(hook_path(workflow), json={}).json()["run_id"]
        with user.client("workflows") as api:
            first = api.get(f"/runs/{run_id}")
        assert first.status_code == 200
        assert first.json()["status"] in {"queued", "running"}
        assert wait_for_run(user, run_id)["status"] == "succeeded"

    def test_failing_filter_succeeds_with_the_rest_skipped(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        workflow = create_workflow(user, _every_core_node(echo))
        hits_before = echo.hits.count("/echo")
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            run_id = ingest.post(hook_path(workflow), json={"id": "S1", "amount": 5}).json()[
                "run_id"
            ]
        run = wait_for_run(user, run_id)
        assert run["status"] == "succeeded"
        assert [s["status"] for s in run["steps"]] == ["succeeded"] + ["skipped"] * 4
        assert echo.hits.count("/echo") == hits_before  # the skipped request was never sent

    def test_failing_node_fails_the_run_and_names_it(
        self, stack: Stack, user: ApiUser, echo: LocalServer
    ) -> None:
        nodes = [{"id": "call", "type": "http_request", "params": {"url": echo.url("/status/404")}}]
        workflow = create_workflow(user, nodes)
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            run_id = ingest.post(hook_path(workflow), json={}).json()["run_id"]
        run = wait_for_run(user, run_id)
        assert run["status"] == "failed"
        assert "call" in run["error"]
        assert run["steps"][0]["status"] == "failed"
        assert "404" in run["steps"][0]["error"]

    def test_another_user_cannot_read_the_run(
        self, stack: Stack, user: ApiUser, other_user: ApiUser
    ) -> None:
        workflow = create_workflow(user, [{"id": "n", "type": "log", "params": {"message": "x"}}])
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            run_id = ingest.post(hook_path(workflow), json={}).json()["run_id"]
        wait_for_run(user, run_id)
        with other_user.client("workflows") as api:
            assert api.get(f"/runs/{run_id}").status_code == 404
            assert api.post(f"/runs/{run_id}/retry").status_code == 404


class TestSignedWebhook:
    def test_github_signature_is_enforced_end_to_end(self, stack: Stack, user: ApiUser) -> None:
        secret = "e2e-github-secret-0123456789"
        workflow = create_workflow(
            user,
            [{"id": "n", "type": "log", "params": {"message": "{{ trigger.body.action }}"}}],
            trigger={"type": "webhook", "signature": {"scheme": "github", "secret": secret}},
        )
        body = json.dumps({"action": "opened"}).encode()
        good = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json", "X-GitHub-Delivery": f"d-{time.time()}"}
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            unsigned = ingest.post(hook_path(workflow), content=body, headers=headers)
            forged = ingest.post(
                hook_path(workflow),
                content=body,
                headers={**headers, "X-Hub-Signature-256": "sha256=" + "0" * 64},
            )
            signed = ingest.post(
                hook_path(workflow), content=body, headers={**headers, "X-Hub-Signature-256": good}
            )
        assert unsigned.status_code == 401
        assert forged.status_code == 401
        assert signed.status_code == 202, signed.text
        run = wait_for_run(user, signed.json()["run_id"])
        assert run["status"] == "succeeded"
        assert "sha256=" not in json.dumps(run)  # the signature is not kept in the run record


class TestRotationAndDeactivation:
    def test_rotated_url_stops_within_a_second(self, stack: Stack, user: ApiUser) -> None:
        workflow = create_workflow(user, [{"id": "n", "type": "log", "params": {"message": "x"}}])
        old = hook_path(workflow)
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            assert ingest.post(old, json={}).status_code == 202
            with user.client("workflows") as api:
                rotated = api.post(f"/workflows/{workflow['id']}/webhook/rotate").json()
            time.sleep(1.0)
            assert ingest.post(old, json={}).status_code == 404
            assert ingest.post(hook_path(rotated), json={}).status_code == 202

    def test_deactivated_workflow_is_refused_within_a_second(
        self, stack: Stack, user: ApiUser
    ) -> None:
        workflow = create_workflow(user, [{"id": "n", "type": "log", "params": {"message": "x"}}])
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            assert ingest.post(hook_path(workflow), json={}).status_code == 202
            with user.client("workflows") as api:
                api.patch(f"/workflows/{workflow['id']}", json={"active": False})
            time.sleep(1.0)
            assert ingest.post(hook_path(workflow), json={}).status_code == 409


class TestDedupe:
    def test_same_idempotency_key_runs_once(
        self, stack: Stack, user: ApiUser, db: Database
    ) -> None:
        workflow = create_workflow(user, [{"id": "n", "type": "log", "params": {"message": "x"}}])
        headers = {"Idempotency-Key": f"order-{time.time_ns()}"}
        with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
            first = ingest.post(hook_path(workflow), json={"n": 1}, headers=headers)
            again = ingest.post(hook_path(workflow), json={"n": 1}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert first.json()["run_id"] == again.json()["run_id"]
        wait_for_run(user, first.json()["run_id"])
        count = db.fetchval(
            "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1::uuid", workflow["id"]
        )
        assert count == 1


class TestBurst:
    def test_300_concurrent_webhooks_are_all_accepted_and_run_exactly_once(
        self, stack: Stack, user: ApiUser, db: Database
    ) -> None:
        workflow = create_workflow(
            user,
            [
                {
                    "id": "shape",
                    "type": "transform",
                    "params": {"values": {"n": "{{ trigger.body.n }}"}},
                }
            ],
        )
        path = hook_path(workflow)

        async def fire() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=100)
            async with httpx.AsyncClient(
                base_url=stack.url("ingest"), timeout=30, limits=limits
            ) as ingest:
                return await asyncio.gather(*(ingest.post(path, json={"n": n}) for n in range(300)))

        responses = asyncio.run(fire())

        assert [r.status_code for r in responses] == [202] * 300
        run_ids = {r.json()["run_id"] for r in responses}
        assert len(run_ids) == 300
        deadline = time.monotonic() + 90
        done = 0
        while time.monotonic() < deadline:
            done = db.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1::uuid"
                " AND status = 'succeeded'",
                workflow["id"],
            )
            if done == 300:
                break
            time.sleep(0.2)
        assert done == 300
        rows = db.fetch(
            "SELECT id::text AS id,"
            " (SELECT count(*) FROM run_steps s WHERE s.run_id = r.id) AS steps"
            " FROM workflow_runs r WHERE workflow_id = $1::uuid",
            workflow["id"],
        )
        assert {row["id"] for row in rows} == run_ids  # no run lost, none invented
        assert all(row["steps"] == 1 for row in rows)  # no step recorded twice
        inputs = sorted(
            row["n"]
            for row in db.fetch(
                "SELECT (output->>'n')::int AS n FROM run_steps s JOIN workflow_runs r"
                " ON r.id = s.run_id WHERE r.workflow_id = $1::uuid",
                workflow["id"],
            )
        )
        assert inputs == list(range(300))
