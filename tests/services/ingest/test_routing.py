"""Token resolution: changes take effect within a second; Redis misses go to workflows."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from shared.hooks import HookRecord, token_hash
from tests.services.ingest.conftest import Ingest, RoutedHook

# The contract: a rotated token or a deactivated workflow stops being accepted within 1 s.
EFFECTIVE_WITHIN_S = 1.0


def _seconds_until(probe: Callable[[], int], wanted: int, limit_s: float = 3.0) -> float:
    """Poll until `probe()` returns `wanted`; the seconds it took."""
    start = time.monotonic()
    while (status := probe()) != wanted:
        elapsed = time.monotonic() - start
        assert elapsed < limit_s, f"still {status} after {elapsed:.2f}s"
        time.sleep(0.02)
    return time.monotonic() - start


class TestChanges:
    def test_deactivation_takes_effect_within_a_second(
        self, client: httpx.Client, hook: RoutedHook
    ) -> None:
        assert client.post(hook.path, json={}).status_code == 202  # now cached as active
        hook.publish(active=False, version=2)
        took = _seconds_until(lambda: client.post(hook.path, json={}).status_code, 409)
        assert took < EFFECTIVE_WITHIN_S

    def test_rotation_takes_effect_within_a_second(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        assert client.post(hook.path, json={}).status_code == 202
        rotated = ingest.route()
        rotated.publish(workflow_id=hook.workflow_id, owner_id=hook.record["owner_id"])
        hook.revoke()
        took = _seconds_until(lambda: client.post(hook.path, json={}).status_code, 404)
        assert took < EFFECTIVE_WITHIN_S
        assert client.post(rotated.path, json={}).status_code == 202

    def test_new_secret_takes_effect_within_a_second(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        hook = route(signature={"scheme": "hmac-sha256", "secret": "old"})

        def post_signed_with_old() -> int:
            digest = hmac.new(b"old", b"{}", hashlib.sha256).hexdigest()
            return client.post(
                hook.path,
                content=b"{}",
                headers={"X-Signature-256": digest, "content-type": "application/json"},
            ).status_code

        assert post_signed_with_old() == 202
        hook.publish(signature={"scheme": "hmac-sha256", "secret": "new"}, version=2)
        assert _seconds_until(post_signed_with_old, 401) < EFFECTIVE_WITHIN_S

    def test_new_version_is_recorded_within_a_second(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        client.post(hook.path, json={})
        hook.publish(version=5)

        def version_of_next_run() -> int:
            run_id = client.post(hook.path, json={}).json()["run_id"]
            return ingest.job(run_id)["workflow_version"]

        assert _seconds_until(version_of_next_run, 5) < EFFECTIVE_WITHIN_S


def _fallback_only(ingest: Ingest, *, active: bool = True) -> tuple[str, HookRecord]:
    """A token whose record only the (fake) workflows service knows: Redis misses."""
    token = secrets.token_urlsafe(32)
    record: HookRecord = {
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "version": 3,
        "active": active,
        "signature": None,
    }
    ingest.workflows.records[token_hash(token)] = record
    return token, record


def _lookups(ingest: Ingest, token: str) -> list[str | None]:
    path = f"/internal/hooks/{token_hash(token)}"
    return [presented for seen, presented in ingest.workflows.requests if seen == path]


class TestFallback:
    def test_redis_miss_asks_the_workflows_service(
        self, client: httpx.Client, ingest: Ingest
    ) -> None:
        token, record = _fallback_only(ingest)
        response = client.post(f"/hooks/{token}", json={"via": "fallback"})
        assert response.status_code == 202
        job = ingest.job(response.json()["run_id"])
        assert (job["workflow_id"], job["workflow_version"]) == (record["workflow_id"], 3)

    def test_lookup_presents_the_internal_token(self, client: httpx.Client, ingest: Ingest) -> None:
        token, _ = _fallback_only(ingest)
        client.post(f"/hooks/{token}", json={})
        assert _lookups(ingest, token) == [ingest.workflows.internal_token]

    def test_inactive_from_fallback_is_409(self, client: httpx.Client, ingest: Ingest) -> None:
        token, _ = _fallback_only(ingest, active=False)
        assert client.post(f"/hooks/{token}", json={}).status_code == 409

    def test_unknown_to_both_is_404(self, client: httpx.Client, ingest: Ingest) -> None:
        assert client.post(f"/hooks/{secrets.token_urlsafe(32)}", json={}).status_code == 404

    def test_unknown_token_is_cached_too(self, client: httpx.Client, ingest: Ingest) -> None:
        token = secrets.token_urlsafe(32)
        statuses = {client.post(f"/hooks/{token}", json={}).status_code for _ in range(5)}
        assert statuses == {404}
        assert len(_lookups(ingest, token)) < 5

    async def test_burst_on_a_cold_token_asks_once(self, ingest: Ingest) -> None:
        token, _ = _fallback_only(ingest)
        async with httpx.AsyncClient(base_url=ingest.url, timeout=10) as http:
            responses = await asyncio.gather(
                *(http.post(f"/hooks/{token}", json={"i": i}) for i in range(50))
            )
        assert {r.status_code for r in responses} == {202}
        assert len(_lookups(ingest, token)) < 5  # one per cache period, not one per request

    @pytest.mark.parametrize("status", [500, 502, 401])
    def test_workflows_failing_is_503_not_404(
        self, client: httpx.Client, ingest: Ingest, status: int
    ) -> None:
        token, _ = _fallback_only(ingest)
        ingest.workflows.fail_with = status
        try:
            response = client.post(f"/hooks/{token}", json={})
        finally:
            ingest.workflows.fail_with = None
        assert response.status_code == 503
        assert int(response.headers["retry-after"]) > 0
        assert ingest.queued_ids() == []
