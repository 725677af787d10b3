"""What a step record may contain: the redaction and truncation rules, without processes."""

from __future__ import annotations

import orjson

from services.worker.engine.records import REDACTED, encode_json, record_payload, redact


class TestRedact:
    def test_secret_params_are_redacted_only_at_the_top(self) -> None:
        value = {"key": "k1", "nested": {"key": "visible"}}
        assert redact(value, {"key"}) == {"key": REDACTED, "nested": {"key": "visible"}}

    def test_credential_looking_keys_are_redacted_at_any_depth(self) -> None:
        value = {"a": [{"X-Api-Key": "1", "Set-Cookie": "2", "accessToken": "3", "page": 4}]}
        assert redact(value) == {
            "a": [
                {"X-Api-Key": REDACTED, "Set-Cookie": REDACTED, "accessToken": REDACTED, "page": 4}
            ]
        }

    def test_url_passwords_and_credential_query_parameters_are_redacted(self) -> None:
        url = "https://bob:pw@api.example.org/v1?api_key=k&page=2&access_token=t#top"
        assert redact({"url": url}) == {
            "url": f"https://bob:{REDACTED}@api.example.org/v1"
            f"?api_key={REDACTED}&page=2&access_token={REDACTED}#top"
        }

    def test_plain_strings_and_urls_without_credentials_are_unchanged(self) -> None:
        value = {"message": "token bucket at 3", "url": "http://example.org/a?page=1"}
        assert redact(value) == value


class TestRecordPayload:
    def test_small_payload_is_recorded_as_is(self) -> None:
        assert orjson.loads(orjson.dumps(record_payload({"a": 1}, 100))) == {"a": 1}

    def test_oversize_payload_becomes_a_marker_with_size_and_preview(self) -> None:
        marker = orjson.loads(orjson.dumps(record_payload({"blob": "é" * 2000}, 100)))
        assert marker["truncated"] is True
        assert marker["size"] == len(orjson.dumps({"blob": "é" * 2000}))
        assert marker["preview"].startswith('{"blob":"éé')
        assert len(marker["preview"].encode()) <= 100


class TestEncodeJson:
    """Whatever a node or template returns becomes valid JSON for jsonb, never an exception."""

    def test_integers_beyond_64_bits_are_written_exactly(self) -> None:
        value = {"big": 2**70, "small": -(2**64), "list": [2**64]}
        assert orjson.loads(encode_json(value)) == {
            "big": float(2**70),
            "small": -float(2**64),
            "list": [float(2**64)],
        }
        assert b"1180591620717411303424" in encode_json(value)

    def test_the_portable_path_keeps_the_other_rules(self) -> None:
        value = {"big": 2**70, "nan": float("nan"), "nul\x00": "a\x00b", 7: True}
        assert orjson.loads(encode_json(value)) == {
            "big": float(2**70),
            "nan": None,
            "nul\ufffd": "a\ufffdb",
            "7": True,
        }

    def test_integers_too_long_to_print_become_a_marker(self) -> None:
        assert orjson.loads(encode_json([2**20_000])) == ["<20001-bit int>"]

    def test_nesting_deeper_than_orjson_allows_is_written(self) -> None:
        value: list = []
        inner = value
        for _ in range(300):
            inner.append([])
            inner = inner[0]
        assert encode_json(value) == b"[" * 301 + b"]" * 301


class TestSignatureHeaders:
    def test_webhook_signatures_are_redacted_like_credentials(self) -> None:
        headers = {
            "x-shopify-hmac-sha256": "1",
            "x-hub-signature-256": "2",
            "webhook-signature": "3",
            "x-square-hmacsha256-signature": "4",
            "ocp-apim-subscription-key": "5",
            "x-request-id": "6",
        }
        assert redact(headers) == {**{name: REDACTED for name in headers}, "x-request-id": "6"}
