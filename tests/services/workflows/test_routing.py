"""The webhook routing records the workflows service mirrors into Redis for ingest, and the
internal endpoint ingest falls back to."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import redis

from scripts.localinfra import stop_process
from shared.crypto import Keyring, hook_secret_context
from shared.hooks import decode_record
from tests.conftest import ApiUser
from tests.fixtures.stack import Stack
from tests.services.workflows.conftest import (
    SECRET,
    ExtraService,
    create_workflow,
    record_key,
    start_workflows,
    webhook_hash,
)

SIGNED = {"signature": {"scheme": "hmac-sha256", "secret": SECRET, "header": "X-Sig"}}


def _record(rds: redis.Redis, workflow: dict[str, Any]) -> dict[str, Any] | None:
    raw = rds.get(record_key(workflow))
    return None if raw is None else dict(decode_record(raw) or {})


def _user_id(user: ApiUser) -> str:
    with user.client("auth") as auth:
        user_id: str = auth.get("/auth/me").json()["id"]
        return user_id


class TestMirror:
    def test_create_writes_the_record_with_the_secret_sealed(
        self, api: httpx.Client, rds: redis.Redis, user: ApiUser, keyring: Keyring
    ) -> None:
        workflow = create_workflow(api, trigger=SIGNED)
        record = _record(rds, workflow)
        assert record is not None
        sealed = record["signature"].pop("secret")
        assert record == {
            "workflow_id": workflow["id"],
            "owner_id": _user_id(user),
            "version": 1,
            "active": True,
            "sealed": True,
            "signature": {"scheme": "hmac-sha256", "header": "X-Sig"},
        }
        # Sealed in Redis: only a holder of the keys (ingest) can open it.
        assert SECRET not in sealed
        opened = keyring.open(sealed, hook_secret_context(workflow["id"]))
        assert opened.decode() == SECRET

    def test_change_rewrites_the_record(self, api: httpx.Client, rds: redis.Redis) -> None:
        workflow = create_workflow(api, trigger=SIGNED)
        api.patch(f"/workflows/{workflow['id']}", json={"active": False, "trigger": None})
        record = _record(rds, workflow)
        assert record is not None
        assert (record["version"], record["active"], record["signature"]) == (2, False, None)

    def test_rotation_moves_the_record_to_the_new_token(
        self, api: httpx.Client, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(api)
        rotated = api.post(f"/workflows/{workflow['id']}/webhook/rotate").json()
        assert rds.get(record_key(workflow)) is None
        record = _record(rds, rotated)
        assert record is not None
        assert (record["workflow_id"], record["version"]) == (workflow["id"], 1)

    def test_delete_removes_the_record(self, api: httpx.Client, rds: redis.Redis) -> None:
        workflow = create_workflow(api)
        assert rds.get(record_key(workflow)) is not None
        api.delete(f"/workflows/{workflow['id']}")
        assert rds.get(record_key(workflow)) is None

    def test_concurrent_changes_leave_the_newest_record(
        self, api: httpx.Client, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(api)
        path = f"/workflows/{workflow['id']}"
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: api.patch(path, json={"name": f"n{i}"}), range(12)))
        record = _record(rds, workflow)
        assert record is not None
        assert record["version"] == api.get(path).json()["version"] == 13


def _internal(stack: Stack, hashed: str, token: str | None) -> httpx.Response:
    headers = {"X-Internal-Token": token} if token is not None else {}
    return httpx.get(f"{stack.url('workflows')}/internal/hooks/{hashed}", headers=headers)


class TestInternalEndpoint:
    @pytest.mark.parametrize("token", [None, "", "wrong-token"])
    def test_requires_the_internal_token(
        self, api: httpx.Client, stack: Stack, token: str | None
    ) -> None:
        workflow = create_workflow(api)
        response = _internal(stack, webhook_hash(workflow), token)
        assert response.status_code == 401
        assert SECRET not in response.text

    def test_returns_the_record_from_postgres(
        self,
        api: httpx.Client,
        stack: Stack,
        internal_token: str,
        rds: redis.Redis,
        keyring: Keyring,
    ) -> None:
        workflow = create_workflow(api, trigger=SIGNED)
        response = _internal(stack, webhook_hash(workflow), internal_token)
        assert response.status_code == 200
        assert response.json() == _record(rds, workflow)
        # Sealed on this internal API too: it opens only in ingest's memory.
        assert SECRET not in response.text
        sealed = response.json()["signature"]["secret"]
        assert keyring.open(sealed, hook_secret_context(workflow["id"])).decode() == SECRET

    @pytest.mark.parametrize("hashed", ["0" * 64, "not-hex", "A" * 64])
    def test_unknown_hash_is_404(self, stack: Stack, internal_token: str, hashed: str) -> None:
        assert _internal(stack, hashed, internal_token).status_code == 404

    def test_rotated_token_is_404(
        self, api: httpx.Client, stack: Stack, internal_token: str
    ) -> None:
        workflow = create_workflow(api)
        api.post(f"/workflows/{workflow['id']}/webhook/rotate")
        assert _internal(stack, webhook_hash(workflow), internal_token).status_code == 404

    def test_repairs_a_missing_record(
        self, api: httpx.Client, stack: Stack, internal_token: str, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(api)
        rds.delete(record_key(workflow))
        _internal(stack, webhook_hash(workflow), internal_token)
        record = _record(rds, workflow)
        assert record is not None
        assert record["workflow_id"] == workflow["id"]

    def test_repair_never_overwrites_a_newer_record(
        self, api: httpx.Client, stack: Stack, internal_token: str, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(api)
        newer = {**(_record(rds, workflow) or {}), "version": 99, "active": False}
        rds.set(record_key(workflow), orjson.dumps(newer))
        response = _internal(stack, webhook_hash(workflow), internal_token)
        assert response.json()["version"] == 1  # the answer is PostgreSQL's truth
        assert _record(rds, workflow) == newer


class TestStartupMirror:
    def test_a_starting_process_restores_missing_records(
        self,
        api: httpx.Client,
        stack: Stack,
        rds: redis.Redis,
        tmp_path: Path,
    ) -> None:
        workflows = [create_workflow(api) for _ in range(3)]
        rds.delete(*(record_key(workflow) for workflow in workflows))
        service = start_workflows(stack, tmp_path, {})
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if all(rds.get(record_key(workflow)) for workflow in workflows):
                    break
                time.sleep(0.05)
            for workflow in workflows:
                record = _record(rds, workflow)
                assert record is not None
                assert record["workflow_id"] == workflow["id"]
        finally:
            stop_process(service.proc, timeout=20)


class TestRedisDown:
    """A process whose Redis is unreachable refuses changes it could not mirror."""

    def _client(self, service: ExtraService, user: ApiUser) -> httpx.Client:
        return service.client(user)

    @pytest.mark.parametrize(
        ("method", "suffix", "body"),
        [
            ("PATCH", "", {"active": False}),
            ("PUT", "", {"name": "x", "nodes": []}),
            ("DELETE", "", None),
            ("POST", "/webhook/rotate", None),
        ],
    )
    def test_change_is_503_and_not_applied(
        self,
        api: httpx.Client,
        user: ApiUser,
        redis_down: ExtraService,
        method: str,
        suffix: str,
        body: dict[str, Any] | None,
    ) -> None:
        workflow = create_workflow(api)
        with redis_down.client(user) as down:
            response = down.request(method, f"/workflows/{workflow['id']}{suffix}", json=body)
        assert response.status_code == 503
        assert api.get(f"/workflows/{workflow['id']}").json() == workflow

    def test_create_still_succeeds(self, user: ApiUser, redis_down: ExtraService) -> None:
        # Nothing to revoke; ingest finds a new workflow through /internal/hooks meanwhile.
        with redis_down.client(user) as down:
            assert down.post("/workflows", json={"name": "n", "nodes": []}).status_code == 201

    def test_is_not_ready(self, redis_down: ExtraService) -> None:
        response = httpx.get(redis_down.url + "/readyz", timeout=10)
        assert response.status_code == 503
        assert response.json()["checks"]["database"] == "ok"
        assert response.json()["checks"]["redis"] != "ok"
