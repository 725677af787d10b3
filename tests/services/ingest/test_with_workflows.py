"""Ingest with the real workflows service and worker (the `stack`): webhook URLs from the API are
accepted, API changes reach ingest within a second, a Redis miss goes to the real internal
endpoint, and an accepted webhook becomes a run the runs API shows."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx
import pytest
import redis

from shared.hooks import hook_key, token_hash
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack

SECRET = "a-long-shared-secret-" + "7" * 12
LOG_NODE = {"id": "note", "type": "log", "params": {"message": "order {{ trigger.body.id }}"}}


@pytest.fixture
def api(user: ApiUser) -> Iterator[httpx.Client]:
    with user.client("workflows") as client:
        yield client


@pytest.fixture
def hooks(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def _create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/workflows", json={"name": "ingest e2e", "nodes": [LOG_NODE], **fields})
    assert response.status_code == 201, response.text
    workflow: dict[str, Any] = response.json()
    return workflow


def _status(hooks: httpx.Client, url: str) -> int:
    return hooks.post(url, json={}).status_code


def _until(probe: Callable[[], Any], wanted: Any, limit_s: float) -> float:
    start = time.monotonic()
    while (value := probe()) != wanted:
        assert time.monotonic() - start < limit_s, f"still {value!r}"
        time.sleep(0.02)
    return time.monotonic() - start


class TestAcceptsWhatTheApiConfigures:
    def test_webhook_url_of_a_new_workflow_is_accepted(
        self, api: httpx.Client, hooks: httpx.Client
    ) -> None:
        workflow = _create(api)
        response = hooks.post(workflow["webhook_url"], json={"id": 1})
        assert response.status_code == 202, response.text

    def test_accepted_webhook_is_a_run_the_runs_api_shows(
        self, api: httpx.Client, hooks: httpx.Client
    ) -> None:
        workflow = _create(api)
        run_id = hooks.post(workflow["webhook_url"], json={"id": 2}).json()["run_id"]
        run = api.get(f"/runs/{run_id}")
        assert run.status_code == 200, run.text
        assert run.json()["workflow_id"] == workflow["id"]

    def test_run_of_a_webhook_succeeds(self, api: httpx.Client, hooks: httpx.Client) -> None:
        workflow = _create(api)
        run_id = hooks.post(workflow["webhook_url"], json={"id": 3}).json()["run_id"]
        _until(lambda: api.get(f"/runs/{run_id}").json()["status"], "succeeded", 30)

    def test_signature_set_through_the_api_is_enforced(
        self, api: httpx.Client, hooks: httpx.Client
    ) -> None:
        workflow = _create(
            api, trigger={"type": "webhook", "signature": {"scheme": "github", "secret": SECRET}}
        )
        body = b'{"id": 4}'
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"content-type": "application/json"}
        unsigned = hooks.post(workflow["webhook_url"], content=body, headers=headers)
        signed = hooks.post(
            workflow["webhook_url"],
            content=body,
            headers={**headers, "X-Hub-Signature-256": f"sha256={digest}"},
        )
        assert (unsigned.status_code, signed.status_code) == (401, 202)


class TestChangesReachIngestWithinASecond:
    def test_deactivation(self, api: httpx.Client, hooks: httpx.Client) -> None:
        workflow = _create(api)
        assert hooks.post(workflow["webhook_url"], json={}).status_code == 202
        api.patch(f"/workflows/{workflow['id']}", json={"active": False})
        assert _until(partial(_status, hooks, workflow["webhook_url"]), 409, 3) < 1.0

    def test_rotation(self, api: httpx.Client, hooks: httpx.Client) -> None:
        workflow = _create(api)
        assert hooks.post(workflow["webhook_url"], json={}).status_code == 202
        rotated = api.post(f"/workflows/{workflow['id']}/webhook/rotate").json()
        assert _until(partial(_status, hooks, workflow["webhook_url"]), 404, 3) < 1.0
        assert hooks.post(rotated["webhook_url"], json={}).status_code == 202

    def test_deletion(self, api: httpx.Client, hooks: httpx.Client) -> None:
        workflow = _create(api)
        assert hooks.post(workflow["webhook_url"], json={}).status_code == 202
        api.delete(f"/workflows/{workflow['id']}")
        assert _until(partial(_status, hooks, workflow["webhook_url"]), 404, 3) < 1.0


class TestRedisMiss:
    def test_falls_back_to_the_workflows_service(
        self, api: httpx.Client, hooks: httpx.Client, stack: Stack
    ) -> None:
        workflow = _create(api)
        token = workflow["webhook_url"].rsplit("/", 1)[1]
        rds = redis.Redis.from_url(stack.env["REDIS_URL"])
        rds.delete(hook_key(token_hash(token)))  # as if Redis had lost the record
        response = hooks.post(workflow["webhook_url"], json={"id": 5})
        assert response.status_code == 202, response.text
        assert api.get(f"/runs/{response.json()['run_id']}").status_code == 200
        rds.close()
