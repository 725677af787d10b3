"""Load and odd inputs: a burst all accepted exactly once; nothing ever a 500 or a hang."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services.ingest.conftest import Ingest, RoutedHook

BURST = 300


class TestBurst:
    async def test_concurrent_deliveries_are_all_accepted_once(
        self, ingest: Ingest, hook: RoutedHook
    ) -> None:
        limits = httpx.Limits(max_connections=BURST)
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30, limits=limits) as http:
            responses = await asyncio.gather(
                *(http.post(hook.path, json={"n": n}) for n in range(BURST))
            )
        assert [r.status_code for r in responses] == [202] * BURST
        run_ids = {r.json()["run_id"] for r in responses}
        assert len(run_ids) == BURST
        queued = ingest.queued_ids()
        assert len(queued) == BURST
        assert set(queued) == run_ids
        bodies = sorted(ingest.job(run_id)["trigger"]["body"]["n"] for run_id in run_ids)
        assert bodies == list(range(BURST))

    async def test_concurrent_repeats_of_one_delivery_start_one_run(
        self, ingest: Ingest, hook: RoutedHook
    ) -> None:
        headers = {"Idempotency-Key": "same-event"}
        async with httpx.AsyncClient(base_url=ingest.url, timeout=30) as http:
            responses = await asyncio.gather(
                *(http.post(hook.path, json={}, headers=headers) for _ in range(50))
            )
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["run_id"] for r in responses}) == 1
        assert len(ingest.queued_ids()) == 1


def _answered(ingest: Ingest, status: int) -> float:
    """How many requests the ingest process answered with `status`, from its own metrics."""
    text = httpx.get(f"{ingest.url}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "automateos_http_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("status") == str(status)
    )


def _server_errors(ingest: Ingest) -> float:
    return _answered(ingest, 500)


def _raw(ingest: Ingest, request: bytes, close_after_send: bool = False) -> bytes:
    """Send bytes on a fresh connection; the response's first line (b"" if none)."""
    with socket.create_connection(("127.0.0.1", ingest.service.port), timeout=10) as conn:
        conn.sendall(request)
        if close_after_send:
            return b""
        data = b""
        while b"\r\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0]


Odd = Callable[[httpx.Client, RoutedHook], httpx.Response]

ODD_REQUESTS: dict[str, Odd] = {
    "huge-header": lambda c, h: c.post(h.path, headers={"x-big": "a" * 60_000}),
    "many-headers": lambda c, h: c.post(h.path, headers={f"x-h{i}": "v" for i in range(300)}),
    "non-utf8-header": lambda c, h: c.post(h.path, headers=[(b"x-bin", b"\xff\xfe\x80")]),
    "invalid-utf8-json": lambda c, h: c.post(
        h.path, content=b"\xc3\x28", headers={"content-type": "application/json"}
    ),
    "json-bad-charset": lambda c, h: c.post(
        h.path, content=b"{}", headers={"content-type": "application/json; charset=klingon"}
    ),
    "json-utf16": lambda c, h: c.post(
        h.path,
        content='{"a": 1}'.encode("utf-16"),
        headers={"content-type": "application/json; charset=utf-16"},
    ),
    "text-bad-charset": lambda c, h: c.post(
        h.path, content=b"hi", headers={"content-type": "text/plain; charset=klingon"}
    ),
    "garbage-content-type": lambda c, h: c.post(
        h.path, content=b"x", headers={"content-type": ";;;=;charset"}
    ),
    "json-deeply-nested": lambda c, h: c.post(
        h.path, content=b"[" * 1000 + b"]" * 1000, headers={"content-type": "application/json"}
    ),
    "json-too-deep": lambda c, h: c.post(
        h.path, content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"}
    ),
    "json-lone-surrogate": lambda c, h: c.post(
        h.path, content=b'"\\ud800"', headers={"content-type": "application/json"}
    ),
    "json-trailing-garbage": lambda c, h: c.post(
        h.path, content=b"{} {}", headers={"content-type": "application/json"}
    ),
    "nul-bytes-text": lambda c, h: c.post(
        h.path, content=b"a\x00b", headers={"content-type": "text/plain"}
    ),
    "bad-percent-query": lambda c, h: c.get(f"{h.path}?a=%zz&b=%ff%fe&&=&c"),
    "many-query-params": lambda c, h: c.get(
        h.path + "?" + "&".join(f"k{i}=v" for i in range(5000))
    ),
    "many-form-fields": lambda c, h: c.post(
        h.path,
        content="&".join(f"k{i}=v" for i in range(5000)).encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    "empty-idempotency-key": lambda c, h: c.post(h.path, headers={"Idempotency-Key": ""}),
    "unicode-idempotency-key": lambda c, h: c.post(
        h.path, headers=[(b"idempotency-key", "ключ-🔑".encode())]
    ),
    "signature-on-unsigned-hook": lambda c, h: c.post(
        h.path, headers=[(b"x-hub-signature-256", b"sha256=\xff")]
    ),
    "delete": lambda c, h: c.delete(h.path),
    "options": lambda c, h: c.options(h.path),
    "very-long-token": lambda c, h: c.post("/hooks/" + "t" * 20_000),
    "encoded-slash-token": lambda c, h: c.post("/hooks/a%2Fb"),
    "empty-token": lambda c, h: c.post("/hooks/"),
    "dot-segments": lambda c, h: c.post("/hooks/../metrics"),
    "expect-continue": lambda c, h: c.post(h.path, json={}, headers={"Expect": "100-continue"}),
}


class TestOddInputs:
    @pytest.mark.parametrize("case", sorted(ODD_REQUESTS))
    def test_never_a_server_error(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, case: str
    ) -> None:
        before = _server_errors(ingest)
        response = ODD_REQUESTS[case](client, hook)
        assert response.status_code < 500, response.text
        if response.status_code == 202:
            ingest.job(response.json()["run_id"])  # accepted means stored
        assert _server_errors(ingest) == before

    @pytest.mark.parametrize(
        ("name", "request_bytes"),
        [
            ("lower-case-method", b"post /hooks/{token} HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("bad-content-length", b"POST /hooks/{token} HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
            ("negative-length", b"POST /hooks/{token} HTTP/1.1\r\nContent-Length: -5\r\n\r\n"),
            ("garbage-request-line", b"\x00\xff\xfe GARBAGE\r\n\r\n"),
            ("http-0.9", b"GET /hooks/{token}\r\n\r\n"),
        ],
    )
    def test_malformed_http_is_refused_cleanly(
        self, ingest: Ingest, hook: RoutedHook, name: str, request_bytes: bytes
    ) -> None:
        before = _server_errors(ingest)
        status_line = _raw(ingest, request_bytes.replace(b"{token}", hook.token.encode()))
        assert not status_line.startswith(b"HTTP/1.1 5"), status_line
        assert _server_errors(ingest) == before

    def test_client_leaving_mid_body_queues_nothing(self, ingest: Ingest, hook: RoutedHook) -> None:
        errors, gone = _server_errors(ingest), _answered(ingest, 499)
        head = (
            f"POST {hook.path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n"
        )
        _raw(ingest, head.encode() + b'{"partial": ', close_after_send=True)
        # Recorded as 499 (nginx's "client closed request") once ingest notices; wait for it.
        deadline = time.monotonic() + 5
        while _answered(ingest, 499) == gone:
            assert time.monotonic() < deadline, "the disconnect was never recorded"
            time.sleep(0.02)
        assert _server_errors(ingest) == errors
        assert ingest.queued_ids() == []

    def test_random_inputs_never_a_server_error(
        self, client: httpx.Client, route: Callable[..., RoutedHook], ingest: Ingest
    ) -> None:
        rng = random.Random(20261126)
        hooks = [
            route(),
            route(active=False),
            route(signature={"scheme": "standard-webhooks", "secret": "whsec_c2VjcmV0"}),
            route(signature={"scheme": "github", "secret": "s"}),
        ]
        content_types = [
            None,
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain; charset=utf-8",
            "multipart/form-data; boundary=x",
            "application/vnd.x+json",
            "image/png",
        ]
        header_names = [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-hub-signature-256",
            "idempotency-key",
            "traceparent",
            "content-encoding",
        ]
        before = _server_errors(ingest)
        for _ in range(150):
            hook = rng.choice(hooks)
            body = rng.randbytes(rng.randint(0, 300))
            headers: dict[str, Any] = {
                name: rng.randbytes(rng.randint(0, 40)).hex()[: rng.randint(0, 80)]
                for name in rng.sample(header_names, rng.randint(0, len(header_names)))
            }
            content_type = rng.choice(content_types)
            if content_type:
                headers["content-type"] = content_type
            method = rng.choice(["POST", "GET", "PUT", "PATCH", "DELETE"])
            response = client.request(method, hook.path, content=body, headers=headers)
            assert response.status_code < 500, (method, headers, body, response.text)
        assert _server_errors(ingest) == before
