"""Deduplication on the sender's delivery id: one run per id and workflow."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import httpx
import pytest

from tests.services.ingest.conftest import Ingest, RoutedHook, as_text

DELIVERY_HEADERS = ["Idempotency-Key", "webhook-id", "X-GitHub-Delivery"]


def _dedupe_key(workflow_id: str, key: str) -> str:
    return f"automateos:dedupe:{workflow_id}:{hashlib.sha256(key.encode()).hexdigest()}"


class TestDedupe:
    @pytest.mark.parametrize("header", DELIVERY_HEADERS)
    def test_repeat_answers_the_first_run_and_queues_nothing(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, header: str
    ) -> None:
        headers = {header: secrets.token_hex(8)}
        first = client.post(hook.path, json={"n": 1}, headers=headers)
        again = client.post(hook.path, json={"n": 2}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json()["run_id"] == first.json()["run_id"]
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        assert ingest.queued_ids() == [first.json()["run_id"]]

    def test_job_carries_the_key(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, json={}, headers={"Idempotency-Key": "order-42"})
        assert ingest.job(response.json()["run_id"])["idempotency_key"] == "order-42"

    def test_idempotency_key_wins_over_unsigned_delivery_ids(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(
            hook.path, json={}, headers={"Idempotency-Key": "mine", "X-GitHub-Delivery": "gh"}
        )
        assert ingest.job(response.json()["run_id"])["idempotency_key"] == "mine"

    def test_keys_are_per_workflow(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        headers = {"Idempotency-Key": secrets.token_hex(8)}
        one = client.post(route().path, json={}, headers=headers).json()["run_id"]
        two = client.post(route().path, json={}, headers=headers).json()["run_id"]
        assert one != two
        assert sorted(ingest.queued_ids()) == sorted([one, two])

    def test_different_keys_start_different_runs(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        one = client.post(hook.path, json={}, headers={"Idempotency-Key": "a"}).json()["run_id"]
        two = client.post(hook.path, json={}, headers={"Idempotency-Key": "b"}).json()["run_id"]
        assert one != two
        assert len(ingest.queued_ids()) == 2

    def test_key_is_kept_for_the_configured_window(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, json={}, headers={"Idempotency-Key": "ttl"})
        stored = _dedupe_key(hook.workflow_id, "ttl")
        assert as_text(ingest.redis.get(stored)) == response.json()["run_id"]
        ttl = ingest.redis.ttl(stored)
        assert 7 * 24 * 3600 - 60 < ttl <= 7 * 24 * 3600

    def test_rejected_delivery_does_not_consume_the_key(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        hook = route(signature={"scheme": "hmac-sha256", "secret": "s"})
        headers = {"Idempotency-Key": "retry-me", "content-type": "application/json"}
        rejected = client.post(hook.path, content=b"{}", headers=headers)
        assert rejected.status_code == 401
        signed = {**headers, "X-Signature-256": hmac.new(b"s", b"{}", "sha256").hexdigest()}
        accepted = client.post(hook.path, content=b"{}", headers=signed)
        assert accepted.status_code == 202
        assert "idempotent-replayed" not in accepted.headers


class TestSignedDeliveryIdWins:
    """A captured delivery replayed with fresh `Idempotency-Key`s must start no new run: when the
    workflow verifies a scheme with a delivery id, that id is the dedupe key."""

    def _captured_standard_delivery(self, key: bytes) -> tuple[bytes, dict[str, str]]:
        body = b'{"type": "invoice.paid", "amount": 100}'
        msg_id, ts = f"msg_{secrets.token_hex(8)}", str(int(time.time()))
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(mac).decode(),
        }
        return body, headers

    def test_standard_webhooks_replay_with_fresh_keys_starts_nothing(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        key = secrets.token_bytes(24)
        secret = "whsec_" + base64.b64encode(key).decode()
        hook = route(signature={"scheme": "standard-webhooks", "secret": secret})
        body, headers = self._captured_standard_delivery(key)
        first = client.post(hook.path, content=body, headers=headers)
        assert first.status_code == 202
        for _ in range(5):
            replay = client.post(
                hook.path, content=body, headers={**headers, "Idempotency-Key": secrets.token_hex()}
            )
            assert replay.status_code == 202
            assert replay.json()["run_id"] == first.json()["run_id"]
            assert replay.headers["idempotent-replayed"] == "true"
        assert ingest.queued_ids() == [first.json()["run_id"]]
        assert ingest.job(first.json()["run_id"])["idempotency_key"] == headers["webhook-id"]

    def test_github_delivery_id_wins_over_idempotency_key(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        hook = route(signature={"scheme": "github", "secret": "gh-secret"})
        body = b'{"action": "opened"}'
        digest = hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
        headers = {
            "content-type": "application/json",
            "X-Hub-Signature-256": f"sha256={digest}",
            "X-GitHub-Delivery": secrets.token_hex(8),
        }
        first = client.post(hook.path, content=body, headers={**headers, "Idempotency-Key": "a"})
        again = client.post(hook.path, content=body, headers={**headers, "Idempotency-Key": "b"})
        assert again.json()["run_id"] == first.json()["run_id"]
        assert ingest.queued_ids() == [first.json()["run_id"]]

    def test_without_the_delivery_id_the_idempotency_key_still_counts(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        # Gitea and others sign like GitHub but send no X-GitHub-Delivery.
        hook = route(signature={"scheme": "github", "secret": "gh-secret"})
        body = b"{}"
        digest = hmac.new(b"gh-secret", body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={digest}", "Idempotency-Key": "k-1"}
        first = client.post(hook.path, content=body, headers=headers)
        again = client.post(hook.path, content=body, headers=headers)
        assert again.json()["run_id"] == first.json()["run_id"]
