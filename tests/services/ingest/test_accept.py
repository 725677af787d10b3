"""Accepted deliveries: what the 202 says and what lands on the queue."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.services.ingest.conftest import Ingest, RoutedHook, as_bytes
from tests.services.ingest.test_rejects import ODD_CHARSETS


def _accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


class TestReply:
    def test_answers_202_with_the_run_id_and_its_location(
        self, client: httpx.Client, hook: RoutedHook
    ) -> None:
        response = client.post(hook.path, json={"amount": 150})
        run_id = _accepted(response)
        assert response.headers["location"] == f"/runs/{run_id}"

    def test_run_id_is_a_uuid7(self, client: httpx.Client, hook: RoutedHook) -> None:
        import uuid

        run_id = _accepted(client.post(hook.path, json={}))
        assert uuid.UUID(run_id).version == 7

    def test_job_is_queued_when_the_reply_arrives(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        run_id = _accepted(client.post(hook.path, json={}))
        assert ingest.queued_ids() == [run_id]


class TestJob:
    def test_carries_workflow_owner_and_version(
        self, client: httpx.Client, route, ingest: Ingest
    ) -> None:
        hook = route(version=7)
        job = ingest.job(_accepted(client.post(hook.path, json={})))
        assert job["workflow_id"] == hook.workflow_id
        assert job["owner_id"] == hook.record["owner_id"]
        assert job["workflow_version"] == 7
        assert job["retry_of"] is None
        assert job["idempotency_key"] is None

    def test_received_at_is_utc_now(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        job = ingest.job(_accepted(client.post(hook.path, json={})))
        received = datetime.fromisoformat(job["trigger"]["received_at"])
        assert received.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - received) < timedelta(seconds=10)

    @pytest.mark.parametrize("method", ["POST", "GET", "PUT", "PATCH"])
    def test_records_the_method(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, method: str
    ) -> None:
        job = ingest.job(_accepted(client.request(method, hook.path)))
        assert job["trigger"]["method"] == method


class TestBody:
    def test_json_is_parsed(self, client: httpx.Client, hook: RoutedHook, ingest: Ingest) -> None:
        body = {"amount": 150, "items": [1, 2.5, None, True], "text": "grüße ✓"}
        job = ingest.job(_accepted(client.post(hook.path, json=body)))
        assert job["trigger"]["body"] == body

    def test_structured_json_types_are_parsed(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(
            hook.path,
            content=b'{"specversion": "1.0"}',
            headers={"content-type": "application/cloudevents+json; charset=utf-8"},
        )
        assert ingest.job(_accepted(response))["trigger"]["body"] == {"specversion": "1.0"}

    def test_form_becomes_an_object_with_repeated_keys_as_lists(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(
            hook.path,
            content=b"a=1&tag=x&tag=y&empty=&name=J%C3%BCrgen+M",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        body = ingest.job(_accepted(response))["trigger"]["body"]
        assert body == {"a": "1", "tag": ["x", "y"], "empty": "", "name": "Jürgen M"}

    def test_text_becomes_a_string(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(
            hook.path, content="héllo\nworld".encode(), headers={"content-type": "text/plain"}
        )
        assert ingest.job(_accepted(response))["trigger"]["body"] == "héllo\nworld"

    def test_text_honours_its_charset(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(
            hook.path,
            content="héllo".encode("latin-1"),
            headers={"content-type": "text/plain; charset=ISO-8859-1"},
        )
        assert ingest.job(_accepted(response))["trigger"]["body"] == "héllo"

    def test_binary_is_kept_base64_with_its_content_type(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        raw = bytes(range(256))
        response = client.post(hook.path, content=raw, headers={"content-type": "image/png"})
        body = ingest.job(_accepted(response))["trigger"]["body"]
        assert body == {
            "content_type": "image/png",
            "encoding": "base64",
            "data": base64.b64encode(raw).decode(),
            "size": 256,
        }

    def test_multipart_is_kept_base64(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, files={"file": ("a.txt", b"hello")})
        body = ingest.job(_accepted(response))["trigger"]["body"]
        assert body["content_type"].startswith("multipart/form-data; boundary=")
        assert b"hello" in base64.b64decode(body["data"])

    def test_body_without_content_type_is_binary(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, content=b"\x00\x01")
        body = ingest.job(_accepted(response))["trigger"]["body"]
        assert body["content_type"] == "application/octet-stream"
        assert body["size"] == 2

    @pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
    def test_empty_body_is_null(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, content_type: str | None
    ) -> None:
        headers = {"content-type": content_type} if content_type else {}
        response = client.post(hook.path, content=b"", headers=headers)
        assert ingest.job(_accepted(response))["trigger"]["body"] is None


class TestQueryAndHeaders:
    def test_query_becomes_an_object_with_repeated_keys_as_lists(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.get(f"{hook.path}?a=1&b=x&b=y&blank=&q=s%C3%BC%C3%9F")
        query = ingest.job(_accepted(response))["trigger"]["query"]
        assert query == {"a": "1", "b": ["x", "y"], "blank": "", "q": "süß"}

    def test_no_query_is_an_empty_object(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        assert ingest.job(_accepted(client.post(hook.path)))["trigger"]["query"] == {}

    def test_header_names_are_lower_case(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, headers={"X-Event-Type": "Order.Created"})
        headers = ingest.job(_accepted(response))["trigger"]["headers"]
        assert headers["x-event-type"] == "Order.Created"
        assert all(name == name.lower() for name in headers)


class TestTraceparent:
    """The job carries ingest's own span (a child of the sender's), so the run joins the trace.

    Nothing is exported in these tests (no OTLP endpoint); tests/e2e/test_traces.py checks the
    exported spans.
    """

    TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
    SPAN_ID = "00f067aa0ba902b7"
    VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"

    @staticmethod
    def parts(traceparent: str | None) -> list[str]:
        assert traceparent is not None
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", traceparent)
        return traceparent.split("-")

    def test_valid_traceparent_continues_the_senders_trace(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, headers={"traceparent": self.VALID})
        _, trace_id, span_id, flags = self.parts(ingest.job(_accepted(response))["traceparent"])
        assert trace_id == self.TRACE_ID
        assert span_id not in (self.SPAN_ID, "0" * 16)  # ingest's span, not the sender's
        assert int(flags, 16) & 0x01

    def test_unsampled_sender_stays_unsampled(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, headers={"traceparent": self.VALID[:-2] + "00"})
        _, trace_id, _, flags = self.parts(ingest.job(_accepted(response))["traceparent"])
        assert trace_id == self.TRACE_ID
        assert not int(flags, 16) & 0x01

    @pytest.mark.parametrize(
        "value",
        [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ],
    )
    def test_invalid_traceparent_starts_a_new_trace(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, value: str
    ) -> None:
        response = client.post(hook.path, headers={"traceparent": value})
        _, trace_id, _, _ = self.parts(ingest.job(_accepted(response))["traceparent"])
        assert trace_id not in (self.TRACE_ID, "0" * 32)

    def test_missing_traceparent_starts_a_new_trace_per_delivery(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        first = self.parts(ingest.job(_accepted(client.post(hook.path)))["traceparent"])
        second = self.parts(ingest.job(_accepted(client.post(hook.path)))["traceparent"])
        assert first[1] != second[1]


class TestRedaction:
    @pytest.mark.parametrize(
        "name",
        [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Hub-Signature",
            "X-Hub-Signature-256",
            "webhook-signature",
            "X-Internal-Token",
        ],
    )
    def test_secret_headers_never_reach_the_job(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, name: str
    ) -> None:
        response = client.post(hook.path, headers={name: "s3cr3t-value"})
        run_id = _accepted(response)
        assert ingest.job(run_id)["trigger"]["headers"][name.lower()] == "[redacted]"
        assert b"s3cr3t-value" not in as_bytes(ingest.redis.hget(f"rq:job:{run_id}", "data"))

    def test_configured_signature_header_is_redacted(
        self, client: httpx.Client, route, ingest: Ingest
    ) -> None:
        import hashlib
        import hmac

        hook = route(signature={"scheme": "hmac-sha256", "secret": "k", "header": "X-Sig"})
        digest = hmac.new(b"k", b"{}", hashlib.sha256).hexdigest()
        response = client.post(
            hook.path, content=b"{}", headers={"X-Sig": digest, "content-type": "application/json"}
        )
        assert ingest.job(_accepted(response))["trigger"]["headers"]["x-sig"] == "[redacted]"

    def test_other_headers_are_kept(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        response = client.post(hook.path, headers={"User-Agent": "GitHub-Hookshot/abc"})
        headers = ingest.job(_accepted(response))["trigger"]["headers"]
        assert headers["user-agent"] == "GitHub-Hookshot/abc"


class TestOddCharsets:
    @pytest.mark.parametrize("charset", ODD_CHARSETS)
    def test_text_body_in_an_odd_charset_is_kept_as_utf8(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest, charset: str
    ) -> None:
        response = client.post(
            hook.path,
            content=b"caf\xc3\xa9",
            headers={"content-type": f"text/plain; charset={charset}"},
        )
        assert response.status_code == 202, response.text
        assert ingest.job(response.json()["run_id"])["trigger"]["body"] == "café"
