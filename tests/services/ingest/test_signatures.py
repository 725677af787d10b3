"""Signature schemes: good, bad, missing and stale, each signed here independently."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

import httpx
import pytest

from tests.services.ingest.conftest import Ingest, RoutedHook

BODY = b'{"action": "opened", "number": 7}'
JSON = {"content-type": "application/json"}


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _standard(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@pytest.fixture(autouse=True)
def _empty_after(ingest: Ingest) -> None:
    ingest.redis.delete(ingest.queue)


class TestGitHub:
    SECRET = "It's a Secret to Everybody"

    @pytest.fixture
    def github(self, route: Callable[..., RoutedHook]) -> RoutedHook:
        return route(signature={"scheme": "github", "secret": self.SECRET})

    def test_valid_signature_is_accepted(
        self, client: httpx.Client, github: RoutedHook, ingest: Ingest
    ) -> None:
        signature = f"sha256={_hex(self.SECRET, BODY)}"
        response = client.post(
            github.path, content=BODY, headers={**JSON, "X-Hub-Signature-256": signature}
        )
        assert response.status_code == 202
        assert ingest.queued_ids() == [response.json()["run_id"]]

    def test_github_documented_example_verifies(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        # The test vector from GitHub's "Validating webhook deliveries" page.
        hook = route(signature={"scheme": "github", "secret": self.SECRET})
        expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        response = client.post(
            hook.path,
            content=b"Hello, World!",
            headers={"content-type": "text/plain", "X-Hub-Signature-256": f"sha256={expected}"},
        )
        assert response.status_code == 202

    def test_wrong_signature_is_401(self, client: httpx.Client, github: RoutedHook) -> None:
        signature = f"sha256={_hex('another secret', BODY)}"
        response = client.post(
            github.path, content=BODY, headers={**JSON, "X-Hub-Signature-256": signature}
        )
        assert response.status_code == 401
        assert "does not match" in response.json()["detail"]

    def test_tampered_body_is_401(self, client: httpx.Client, github: RoutedHook) -> None:
        signature = f"sha256={_hex(self.SECRET, BODY)}"
        response = client.post(
            github.path,
            content=BODY.replace(b"7", b"8"),
            headers={**JSON, "X-Hub-Signature-256": signature},
        )
        assert response.status_code == 401

    def test_missing_signature_is_401(self, client: httpx.Client, github: RoutedHook) -> None:
        response = client.post(github.path, content=BODY, headers=JSON)
        assert response.status_code == 401
        assert response.json()["detail"] == "missing X-Hub-Signature-256 header"

    def test_malformed_signature_is_401(self, client: httpx.Client, github: RoutedHook) -> None:
        response = client.post(
            github.path,
            content=BODY,
            headers={**JSON, "X-Hub-Signature-256": _hex(self.SECRET, BODY)},
        )
        assert response.status_code == 401
        assert "malformed" in response.json()["detail"]

    def test_non_ascii_signature_is_401(self, client: httpx.Client, github: RoutedHook) -> None:
        response = client.post(
            github.path,
            content=BODY,
            headers=[
                (b"content-type", b"application/json"),
                (b"x-hub-signature-256", b"sha256=\xff"),
            ],
        )
        assert response.status_code == 401

    def test_signature_is_checked_before_the_body_is_parsed(
        self, client: httpx.Client, github: RoutedHook
    ) -> None:
        response = client.post(github.path, content=b"{not json", headers=JSON)
        assert response.status_code == 401


class TestStandardWebhooks:
    KEY = secrets.token_bytes(24)
    SECRET = "whsec_" + base64.b64encode(KEY).decode()

    @pytest.fixture
    def standard(self, route: Callable[..., RoutedHook]) -> RoutedHook:
        return route(signature={"scheme": "standard-webhooks", "secret": self.SECRET})

    def _headers(
        self, signature: str, msg_id: str = "msg_1", ts: int | None = None
    ) -> dict[str, str]:
        timestamp = int(time.time()) if ts is None else ts
        return {
            **JSON,
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature,
        }

    def test_valid_signature_is_accepted(self, client: httpx.Client, standard: RoutedHook) -> None:
        now = int(time.time())
        msg_id = f"msg_{secrets.token_hex(6)}"
        signature = _standard(self.KEY, msg_id, now, BODY)
        response = client.post(
            standard.path, content=BODY, headers=self._headers(signature, msg_id, now)
        )
        assert response.status_code == 202

    def test_any_of_several_signatures_may_match(
        self, client: httpx.Client, standard: RoutedHook
    ) -> None:
        # During a key rotation the sender signs with the old and the new key.
        now = int(time.time())
        msg_id = f"msg_{secrets.token_hex(6)}"
        old = _standard(secrets.token_bytes(24), msg_id, now, BODY)
        new = _standard(self.KEY, msg_id, now, BODY)
        response = client.post(
            standard.path, content=BODY, headers=self._headers(f"{old} {new}", msg_id, now)
        )
        assert response.status_code == 202

    def test_raw_secret_without_prefix_is_the_key(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        hook = route(signature={"scheme": "standard-webhooks", "secret": "plain-secret"})
        now = int(time.time())
        msg_id = f"msg_{secrets.token_hex(6)}"
        signature = _standard(b"plain-secret", msg_id, now, BODY)
        response = client.post(
            hook.path, content=BODY, headers=self._headers(signature, msg_id, now)
        )
        assert response.status_code == 202

    def test_wrong_signature_is_401(self, client: httpx.Client, standard: RoutedHook) -> None:
        now = int(time.time())
        signature = _standard(secrets.token_bytes(24), "msg_1", now, BODY)
        response = client.post(
            standard.path, content=BODY, headers=self._headers(signature, "msg_1", now)
        )
        assert response.status_code == 401
        assert "does not match" in response.json()["detail"]

    def test_signature_over_another_id_is_401(
        self, client: httpx.Client, standard: RoutedHook
    ) -> None:
        now = int(time.time())
        signature = _standard(self.KEY, "msg_other", now, BODY)
        response = client.post(
            standard.path, content=BODY, headers=self._headers(signature, "msg_1", now)
        )
        assert response.status_code == 401

    @pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
    def test_missing_header_is_401_naming_it(
        self, client: httpx.Client, standard: RoutedHook, missing: str
    ) -> None:
        now = int(time.time())
        headers = self._headers(_standard(self.KEY, "msg_1", now, BODY), "msg_1", now)
        del headers[missing]
        response = client.post(standard.path, content=BODY, headers=headers)
        assert response.status_code == 401
        assert missing in response.json()["detail"]

    @pytest.mark.parametrize("offset", [-310, 310], ids=["stale", "future"])
    def test_timestamp_outside_five_minutes_is_401(
        self, client: httpx.Client, standard: RoutedHook, offset: int
    ) -> None:
        then = int(time.time()) + offset
        signature = _standard(self.KEY, "msg_1", then, BODY)
        response = client.post(
            standard.path, content=BODY, headers=self._headers(signature, "msg_1", then)
        )
        assert response.status_code == 401
        assert "stale webhook-timestamp" in response.json()["detail"]

    def test_non_numeric_timestamp_is_401(self, client: httpx.Client, standard: RoutedHook) -> None:
        headers = self._headers("v1,abc")
        headers["webhook-timestamp"] = "yesterday"
        response = client.post(standard.path, content=BODY, headers=headers)
        assert response.status_code == 401
        assert "webhook-timestamp" in response.json()["detail"]


class TestHmacSha256:
    SECRET = "shared-secret"

    @pytest.mark.parametrize("prefix", ["", "sha256="])
    def test_valid_digest_in_default_header_is_accepted(
        self, client: httpx.Client, route: Callable[..., RoutedHook], prefix: str
    ) -> None:
        hook = route(signature={"scheme": "hmac-sha256", "secret": self.SECRET})
        digest = prefix + _hex(self.SECRET, BODY).upper()
        response = client.post(hook.path, content=BODY, headers={**JSON, "X-Signature-256": digest})
        assert response.status_code == 202

    def test_configured_header_is_used(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        hook = route(
            signature={"scheme": "hmac-sha256", "secret": self.SECRET, "header": "X-Shop-Hmac"}
        )
        response = client.post(
            hook.path, content=BODY, headers={**JSON, "x-shop-hmac": _hex(self.SECRET, BODY)}
        )
        assert response.status_code == 202

    def test_wrong_digest_is_401(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        hook = route(signature={"scheme": "hmac-sha256", "secret": self.SECRET})
        response = client.post(
            hook.path, content=BODY, headers={**JSON, "X-Signature-256": _hex("nope", BODY)}
        )
        assert response.status_code == 401
        assert "does not match" in response.json()["detail"]

    def test_missing_digest_is_401_naming_the_header(
        self, client: httpx.Client, route: Callable[..., RoutedHook]
    ) -> None:
        hook = route(
            signature={"scheme": "hmac-sha256", "secret": self.SECRET, "header": "X-Shop-Hmac"}
        )
        response = client.post(hook.path, content=BODY, headers=JSON)
        assert response.status_code == 401
        assert response.json()["detail"] == "missing X-Shop-Hmac header"


class TestMisconfigured:
    @pytest.mark.parametrize(
        "signature",
        [{"scheme": "rot13", "secret": "x"}, {"scheme": "github", "secret": ""}],
        ids=["unknown-scheme", "no-secret"],
    )
    def test_fails_closed(
        self, client: httpx.Client, route: Callable[..., RoutedHook], signature: dict[str, str]
    ) -> None:
        hook = route(signature=signature)
        response = client.post(hook.path, content=BODY, headers=JSON)
        assert response.status_code == 401
        assert "misconfigured" in response.json()["detail"]
