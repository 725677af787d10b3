"""What operators rely on: health, readiness, metrics by outcome, the OpenAPI document."""

from __future__ import annotations

import re
import secrets

import httpx
import pytest

from tests.fixtures.stack import Stack
from tests.services.ingest.conftest import Ingest, RoutedHook


def _counter(metrics: str, outcome: str) -> float:
    match = re.search(rf'^automateos_webhooks_total\{{outcome="{outcome}"\}} (\S+)$', metrics, re.M)
    return float(match.group(1)) if match else 0.0


class TestEndpoints:
    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
    def test_serves_operational_endpoints(self, client: httpx.Client, path: str) -> None:
        assert client.get(path).status_code == 200

    def test_readiness_checks_redis(self, client: httpx.Client) -> None:
        assert client.get("/readyz").json()["checks"] == {"redis": "ok"}

    def test_openapi_describes_the_webhook(self, client: httpx.Client) -> None:
        path = client.get("/openapi.json").json()["paths"]["/hooks/{token}"]
        assert set(path) == {"post", "get", "put", "patch"}
        assert {"202", "401", "404", "409", "413", "503"} <= set(path["post"]["responses"])

    def test_stack_runs_ingest_as_make_up_does(self, stack: Stack) -> None:
        assert httpx.get(f"{stack.url('ingest')}/readyz", timeout=5).status_code == 200


class TestMetrics:
    @pytest.mark.parametrize(
        ("outcome", "send"),
        [
            ("accepted", lambda c, h: c.post(h.path, json={})),
            ("unknown", lambda c, h: c.post(f"/hooks/{secrets.token_urlsafe(32)}")),
            (
                "bad_request",
                lambda c, h: c.post(
                    h.path, content=b"{", headers={"content-type": "application/json"}
                ),
            ),
        ],
    )
    def test_counts_webhooks_by_outcome(
        self, client: httpx.Client, hook: RoutedHook, outcome: str, send
    ) -> None:
        before = _counter(client.get("/metrics").text, outcome)
        send(client, hook)
        assert _counter(client.get("/metrics").text, outcome) == before + 1

    def test_tokens_never_become_labels(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        client.post(hook.path, json={})
        client.post(f"/hooks/{secrets.token_urlsafe(32)}x")
        metrics = client.get("/metrics").text
        assert hook.token not in metrics
        assert 'route="/hooks/{token}"' in metrics
