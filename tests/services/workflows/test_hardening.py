"""What the workflows API refuses or hides: weak signature secrets, oversize definitions, and
credentials in a queued run's trigger."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from shared.ids import uuid7
from shared.queue import RunEnqueuer, RunJob
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra
from tests.services.workflows.conftest import LOG_NODE, create_workflow


def _signed(secret: str, scheme: str = "github") -> dict[str, Any]:
    return {"signature": {"scheme": scheme, "secret": secret}}


class TestSignatureSecrets:
    @pytest.mark.parametrize(
        ("scheme", "secret"),
        [
            ("github", "aaaaaaaaaaaaaaaa"),
            ("github", "abcdabcdabcdabcd"),
            ("hmac-sha256", "abcdefghijklmnop"),
            ("hmac-sha256", "aaaaaaaaaaaaaaab"),
            ("standard-webhooks", "whsec_" + base64.b64encode(b"7 bytes").decode()),
            ("standard-webhooks", "whsec_" + base64.b64encode(b"\x00" * 32).decode()),
        ],
        ids=["repeated", "repeated-unit", "sequence", "one-char", "7-byte-key", "zero-key"],
    )
    def test_weak_secret_is_422_naming_it(
        self, api: httpx.Client, scheme: str, secret: str
    ) -> None:
        response = api.post(
            "/workflows", json={"name": "w", "nodes": [], "trigger": _signed(secret, scheme)}
        )
        assert response.status_code == 422
        assert secret not in response.text
        [error] = response.json()["detail"]
        assert error["loc"][:3] == ["body", "trigger", "signature"]
        assert "too weak" in error["msg"]

    def test_a_weak_secret_is_refused_on_update_too(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        response = api.patch(f"/workflows/{workflow['id']}", json={"trigger": _signed("x" * 40)})
        assert response.status_code == 422

    def test_a_random_key_is_accepted(self, api: httpx.Client) -> None:
        create_workflow(api, trigger=_signed("9f86d081884c7d65"))


class TestDefinitionLimits:
    def test_more_than_100_nodes_is_422(self, api: httpx.Client) -> None:
        # shared/nodes/validation.py MAX_NODES; the body limit below bounds what is parsed first.
        nodes = [{**LOG_NODE, "id": f"n{i}"} for i in range(101)]
        response = api.post("/workflows", json={"name": "big", "nodes": nodes})
        assert response.status_code == 422
        assert ["body", "nodes"] in [error["loc"] for error in response.json()["detail"]]

    def test_definition_over_1_mib_is_413_before_parsing(self, api: httpx.Client) -> None:
        body = b'{"name": "w", "nodes": [], "description": "' + b"x" * (1024 * 1024) + b'"}'
        response = api.post(
            "/workflows", content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 413
        assert response.headers["connection"] == "close"

    def test_chunked_definition_over_1_mib_is_413(self, api: httpx.Client) -> None:
        def chunks() -> Any:
            yield b'{"name": "w", "nodes": [], "description": "'
            for _ in range(20):
                yield b"x" * 65536
            yield b'"}'

        response = api.post(
            "/workflows", content=chunks(), headers={"content-type": "application/json"}
        )
        assert response.status_code == 413

    def test_a_manual_run_may_still_carry_more_than_1_mib(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        body = {"blob": "x" * (2 * 1024 * 1024)}
        response = api.post(f"/workflows/{workflow['id']}/run", json=body)
        assert response.status_code == 202


class TestQueuedRunRedaction:
    HEADERS = {
        "content-type": "application/json",
        "x-api-key": "k-123",
        "x-gitlab-token": "g-456",
        "x-shopify-hmac-sha256": "c2hvcGlmeQ==",
        "x-hub-signature-256": "sha256=abc",
        "webhook-signature": "v1,xyz",
        "x-request-id": "r-1",
    }

    def test_queued_run_hides_what_the_worker_record_hides(
        self, api: httpx.Client, db: Database, infra: Infra
    ) -> None:
        workflow = create_workflow(api)
        [row] = db.fetch("SELECT owner_id FROM workflows WHERE id = $1", uuid.UUID(workflow["id"]))
        run_id = str(uuid7())
        job: RunJob = {
            "run_id": run_id,
            "workflow_id": workflow["id"],
            "owner_id": str(row["owner_id"]),
            "workflow_version": 1,
            "trigger": {  # type: ignore[typeddict-item]
                "body": {},
                "headers": self.HEADERS,
                "query": {},
                "method": "POST",
                "received_at": "2026-11-26T12:00:00+00:00",
            },
            "idempotency_key": None,
            "traceparent": None,
            "retry_of": None,
        }

        async def enqueue() -> None:
            client = aioredis.Redis.from_url(infra.redis_url)
            await RunEnqueuer(client, f"unconsumed-{run_id}", 60).enqueue(job)
            await client.aclose()

        asyncio.run(enqueue())
        run = api.get(f"/runs/{run_id}").json()
        assert run["status"] == "queued"
        assert run["trigger"]["headers"] == {
            "content-type": "application/json",
            "x-api-key": "[redacted]",
            "x-gitlab-token": "[redacted]",
            "x-shopify-hmac-sha256": "[redacted]",
            "x-hub-signature-256": "[redacted]",
            "webhook-signature": "[redacted]",
            "x-request-id": "r-1",
        }
