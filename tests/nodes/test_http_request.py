from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from nodes.http_request import MAX_BODY_BYTES, NODE, HttpRequestParams, parse_retry_after
from shared.nodes import EgressDenied, NodeError, RetryableNodeError
from tests.shared.nodes.local_http import loopback_client, make_ctx


async def _run(client: httpx.AsyncClient, **params: Any) -> Any:
    return await NODE.execute(make_ctx(client), HttpRequestParams.model_validate(params))


class TestParams:
    def test_method_defaults_to_get_and_is_upper_cased(self):
        assert HttpRequestParams.model_validate({"url": "http://x.org"}).method == "GET"
        assert (
            HttpRequestParams.model_validate({"url": "http://x.org", "method": "post"}).method
            == "POST"
        )

    def test_unknown_method_refused(self):
        with pytest.raises(ValidationError):
            HttpRequestParams.model_validate({"url": "http://x.org", "method": "BREW"})

    @pytest.mark.parametrize("url", ["ftp://x.org/a", "/relative", "http://"])
    def test_non_http_url_refused(self, url):
        with pytest.raises(ValidationError, match="absolute http"):
            HttpRequestParams.model_validate({"url": url})

    def test_json_and_body_are_exclusive(self):
        with pytest.raises(ValidationError, match="mutually exclusive"):
            HttpRequestParams.model_validate({"url": "http://x.org", "json": {}, "body": "x"})


class TestResponses:
    async def test_json_body_is_parsed(self, client, local_server):
        output = await _run(client, url=local_server.url("/echo"))
        assert output["status"] == 200
        assert output["body"]["method"] == "GET"
        assert output["truncated"] is False

    async def test_text_body_is_text(self, client, local_server):
        output = await _run(client, url=local_server.url("/text"))
        assert output["body"] == "héllo text"

    async def test_response_headers_are_lower_case(self, client, local_server):
        output = await _run(client, url=local_server.url("/text"))
        assert output["headers"]["x-custom"] == "yes"
        assert all(name == name.lower() for name in output["headers"])

    async def test_invalid_json_falls_back_to_text(self, client, local_server):
        output = await _run(client, url=local_server.url("/bad-json"))
        assert output["body"] == "{not json"

    async def test_large_body_is_capped_and_flagged(self, client, local_server):
        output = await _run(client, url=local_server.url("/big"))
        assert len(output["body"]) == MAX_BODY_BYTES
        assert output["truncated"] is True

    async def test_truncated_json_is_kept_as_text(self, client, local_server):
        output = await _run(client, url=local_server.url("/big?kind=json"))
        assert isinstance(output["body"], str)
        assert output["truncated"] is True

    async def test_head_has_empty_body(self, client, local_server):
        output = await _run(client, method="HEAD", url=local_server.url("/echo"))
        assert (output["status"], output["body"]) == (200, "")


class TestRequests:
    async def test_headers_are_sent(self, client, local_server):
        output = await _run(client, url=local_server.url("/echo"), headers={"X-Api-Key": "k1"})
        assert output["body"]["headers"]["x-api-key"] == "k1"

    async def test_query_is_added_to_the_url_query(self, client, local_server):
        output = await _run(
            client,
            url=local_server.url("/echo?a=1"),
            query={"b": "two", "n": 3, "flag": True, "tags": ["x", "y"], "skip": None},
        )
        assert output["body"]["query"] == [
            ["a", "1"],
            ["b", "two"],
            ["n", "3"],
            ["flag", "true"],
            ["tags", "x"],
            ["tags", "y"],
        ]

    async def test_query_wins_over_the_same_key_in_the_url(self, client, local_server):
        output = await _run(client, url=local_server.url("/echo?page=1"), query={"page": 2})
        assert output["body"]["query"] == [["page", "2"]]

    async def test_json_is_sent_as_json(self, client, local_server):
        output = await _run(client, method="POST", url=local_server.url("/echo"), json={"order": 7})
        assert output["body"]["body"] == '{"order": 7}'
        assert output["body"]["headers"]["content-type"] == "application/json"

    async def test_explicit_json_null_is_sent(self, client, local_server):
        output = await _run(client, method="PUT", url=local_server.url("/echo"), json=None)
        assert output["body"]["body"] == "null"

    async def test_raw_body_is_sent(self, client, local_server):
        output = await _run(
            client,
            method="PATCH",
            url=local_server.url("/echo"),
            body="a=1&b=2",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert output["body"]["method"] == "PATCH"
        assert output["body"]["body"] == "a=1&b=2"

    async def test_trace_context_is_propagated(self, client, local_server):
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        span_context = SpanContext(
            trace_id=0x0AF7651916CD43DD8448EB211C80319C,
            span_id=0xB7AD6B7169203331,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        with trace.use_span(NonRecordingSpan(span_context)):
            output = await _run(client, url=local_server.url("/echo"))
        assert output["body"]["headers"]["traceparent"] == (
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        )


class TestErrors:
    async def test_429_is_retryable_with_retry_after_seconds(self, client, local_server):
        with pytest.raises(RetryableNodeError) as caught:
            await _run(client, url=local_server.url("/status/429?retry_after=7"))
        assert caught.value.retry_after == 7.0
        assert "429" in caught.value.message

    async def test_retry_after_http_date(self, client, local_server):
        when = email.utils.formatdate(time.time() + 60, usegmt=True)
        with pytest.raises(RetryableNodeError) as caught:
            await _run(client, url=local_server.url("/status/503"), query={"retry_after": when})
        retry_after = caught.value.retry_after
        assert retry_after is not None
        assert 55 <= retry_after <= 60

    async def test_500_is_retryable(self, client, local_server):
        with pytest.raises(RetryableNodeError) as caught:
            await _run(client, url=local_server.url("/status/500"))
        assert caught.value.retry_after is None
        assert "status body 500" in caught.value.message

    async def test_404_is_a_node_error_with_status_and_excerpt(self, client, local_server):
        with pytest.raises(NodeError) as caught:
            await _run(client, url=local_server.url("/status/404"))
        assert not caught.value.retryable
        assert "404" in caught.value.message
        assert "status body 404" in caught.value.message

    async def test_error_message_leaves_out_the_query_string(self, client, local_server):
        with pytest.raises(NodeError) as caught:
            await _run(client, url=local_server.url("/status/404?api_key=secret123"))
        assert "secret123" not in caught.value.message

    async def test_timeout_is_retryable(self, client, local_server):
        with pytest.raises(RetryableNodeError, match="timed out"):
            await _run(client, url=local_server.url("/slow?s=2"), timeout_s=0.2)

    async def test_connection_refused_is_retryable(self, client):
        # Port 1 on loopback: nothing listens there, so the connection is refused at once.
        with pytest.raises(RetryableNodeError):
            await _run(client, url="http://127.0.0.1:1/")

    async def test_refused_destination_is_not_retryable(self, local_server):
        async with loopback_client(allowlist="") as guarded:
            with pytest.raises(EgressDenied):
                await _run(guarded, url=local_server.url("/echo"))


class TestRetryAfterParsing:
    def test_seconds(self):
        assert parse_retry_after("120") == 120.0

    def test_date_in_the_past_is_zero(self):
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0

    def test_garbage_is_none(self):
        assert parse_retry_after("soon") is None
        assert parse_retry_after(None) is None


class TestRenderedTypes:
    def test_numbers_rendered_into_text_fields_become_text(self):
        params = HttpRequestParams.model_validate(
            {"url": "http://x.org", "headers": {"X-Order": 42}, "body": 1.5}
        )
        assert (params.headers, params.body) == ({"X-Order": "42"}, "1.5")
