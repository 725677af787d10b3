"""Encryption key rotation: after `reencrypt`, every credential and webhook secret opens with the
newest key alone, and a worker holding only that key runs a workflow that uses them."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from scripts.localinfra import stop_process
from shared.crypto import Keyring, credential_context, generate_key_entry, key_id_of
from shared.db.reencrypt import reencrypt
from shared.hooks import decode_record, hook_key
from shared.ids import uuid7
from shared.queue import RunEnqueuer, RunJob
from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra
from tests.fixtures.stack import Stack
from tests.services.worker.harness import start_worker, worker_env
from tests.shared.nodes.local_http import LocalServer

TOKEN = "rot" + secrets.token_hex(12)


@dataclass
class Rotation:
    new_entry: str  # `<id>:<key>` of the new key alone
    keyring: Keyring  # the new key first, the stack's after it


@pytest.fixture
def rotation(stack: Stack, infra: Infra) -> Iterator[Rotation]:
    """A new key in front of the stack's; everything is sealed back under the stack's own key
    afterwards, since the running services do not know the new one."""
    current = (Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "encryption-keys").read_text().strip()
    new = generate_key_entry("rotated" + secrets.token_hex(2))
    try:
        yield Rotation(new, Keyring.parse(f"{new},{current}"))
    finally:
        asyncio.run(
            reencrypt(infra.database_url, infra.redis_url, Keyring.parse(f"{current},{new}"))
        )


async def _enqueue(infra: Infra, queue: str, workflow: dict[str, Any], owner_id: str) -> str:
    job: RunJob = {
        "run_id": str(uuid7()),
        "workflow_id": workflow["id"],
        "owner_id": owner_id,
        "workflow_version": workflow["version"],
        "trigger": {
            "body": {},
            "headers": {},
            "query": {},
            "method": "POST",
            "received_at": datetime.now(UTC).isoformat(),
        },
        "idempotency_key": None,
        "traceparent": None,
        "retry_of": None,
    }
    client = aioredis.Redis.from_url(infra.redis_url)
    try:
        await RunEnqueuer(client, queue, 60).enqueue(job)
    finally:
        await client.aclose()
    return job["run_id"]


def _wait_status(db: Database, run_id: str, deadline_s: float = 30) -> str | None:
    end = time.monotonic() + deadline_s
    status = None
    while time.monotonic() < end:
        status = db.fetchval("SELECT status FROM workflow_runs WHERE id = $1::uuid", run_id)
        if status in ("succeeded", "failed", "cancelled"):
            return str(status)
        time.sleep(0.1)
    return status


class TestRotation:
    def test_secrets_are_resealed_and_a_worker_with_the_new_key_alone_uses_them(
        self,
        infra: Infra,
        user: ApiUser,
        db: Database,
        echo: LocalServer,
        rotation: Rotation,
        tmp_path: Path,
    ) -> None:
        with user.client("workflows") as api:
            made = api.post(
                "/credentials", json={"name": "api", "type": "bearer", "data": {"token": TOKEN}}
            )
            assert made.status_code == 201, made.text
        with user.client("auth") as auth:
            owner_id = auth.get("/auth/me").json()["id"]
        workflow = create_workflow(
            user,
            [
                {
                    "id": "call",
                    "type": "http_request",
                    "params": {"url": echo.url("/echo/rotated"), "credential": "api"},
                }
            ],
            trigger={"signature": {"scheme": "github", "secret": "s" * 24}},
        )

        done = asyncio.run(reencrypt(infra.database_url, infra.redis_url, rotation.keyring))
        assert done.credentials >= 1
        assert done.webhook_secrets >= 1
        assert done.redis_records >= 1

        only_new = Keyring.parse(rotation.new_entry)
        for row in db.fetch("SELECT id, data FROM credentials"):
            assert key_id_of(row["data"]) == only_new.newest_id
            only_new.open(row["data"], credential_context(str(row["id"])))
        hashed = db.fetchval(
            "SELECT webhook_token_hash FROM workflows WHERE id = $1::uuid", workflow["id"]
        )
        client = redis.Redis.from_url(infra.redis_url)
        try:
            record = decode_record(client.get(hook_key(hashed)) or b"")
        finally:
            client.close()
        assert record is not None
        assert record["signature"] is not None
        assert key_id_of(record["signature"]["secret"]) == only_new.newest_id

        env = worker_env(
            infra.database_url,
            infra.redis_url,
            tmp_path / "data",
            AUTOMATEOS_ENCRYPTION_KEYS=rotation.new_entry,
        )
        worker = start_worker(env, tmp_path / "logs")
        try:
            run_id = asyncio.run(_enqueue(infra, env["AUTOMATEOS_QUEUE_NAME"], workflow, owner_id))
            status = _wait_status(db, run_id)
        finally:
            stop_process(worker.proc, timeout=20)
        assert status == "succeeded"
        sent = dict(echo.headers)
        assert sent["/echo/rotated"]["authorization"] == f"Bearer {TOKEN}"
