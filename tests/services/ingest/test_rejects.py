"""Deliveries ingest refuses: the status, the detail, and nothing queued."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.services.ingest.conftest import MAX_BODY_BYTES, Ingest, RoutedHook


@pytest.fixture(autouse=True)
def nothing_queued(ingest: Ingest) -> Iterator[None]:
    yield
    assert ingest.queued_ids() == []


class TestRouting:
    def test_unknown_token_is_404(self, client: httpx.Client, ingest: Ingest) -> None:
        response = client.post("/hooks/no-such-token-0123456789abcdef", json={})
        assert response.status_code == 404
        assert response.json() == {"detail": "unknown webhook"}

    def test_revoked_token_is_404(self, client: httpx.Client, hook: RoutedHook) -> None:
        hook.revoke()
        assert client.post(hook.path, json={}).status_code == 404

    def test_inactive_workflow_is_409(self, client: httpx.Client, route) -> None:
        hook = route(active=False)
        response = client.post(hook.path, json={})
        assert response.status_code == 409
        assert response.json() == {"detail": "workflow is inactive"}

    @pytest.mark.parametrize(
        "token", ["x" * 300, "t%C3%BCr", "a%20b", "..", "tok%00en"], ids=lambda t: t[:12]
    )
    def test_token_that_cannot_be_ours_is_404(self, client: httpx.Client, token: str) -> None:
        assert client.post(f"/hooks/{token}", json={}).status_code == 404

    @pytest.mark.parametrize("method", ["DELETE", "HEAD", "OPTIONS"])
    def test_other_methods_are_405(
        self, client: httpx.Client, hook: RoutedHook, method: str
    ) -> None:
        response = client.request(method, hook.path)
        assert response.status_code == 405
        assert set(response.headers["allow"].replace(" ", "").split(",")) == {
            "POST",
            "GET",
            "PUT",
            "PATCH",
        }


class TestSize:
    def test_body_at_the_limit_is_accepted(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        body = b"x" * MAX_BODY_BYTES
        response = client.post(hook.path, content=body, headers={"content-type": "text/plain"})
        assert response.status_code == 202
        ingest.redis.delete(ingest.queue)  # this one is meant to be queued

    def test_declared_length_over_the_limit_is_413(
        self, client: httpx.Client, hook: RoutedHook
    ) -> None:
        response = client.post(hook.path, content=b"x" * (MAX_BODY_BYTES + 1))
        assert response.status_code == 413
        assert str(MAX_BODY_BYTES) in response.json()["detail"]

    def test_chunked_body_over_the_limit_is_413(
        self, client: httpx.Client, hook: RoutedHook
    ) -> None:
        def chunks() -> Iterator[bytes]:
            for _ in range(MAX_BODY_BYTES // 1024 + 1):
                yield b"y" * 1024

        response = client.post(hook.path, content=chunks())
        assert response.request.headers["transfer-encoding"] == "chunked"
        assert response.status_code == 413

    def test_connection_is_usable_after_a_413(
        self, client: httpx.Client, hook: RoutedHook, ingest: Ingest
    ) -> None:
        client.post(hook.path, content=b"x" * (MAX_BODY_BYTES + 1))
        assert client.post(hook.path, json={}).status_code == 202
        ingest.redis.delete(ingest.queue)


class TestMalformed:
    def test_malformed_json_is_400_naming_the_problem(
        self, client: httpx.Client, hook: RoutedHook
    ) -> None:
        response = client.post(
            hook.path, content=b'{"amount": 1,}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        detail = response.json()["detail"]
        assert detail.startswith("malformed JSON body:")
        assert "column" in detail

    def test_json_that_is_not_utf8_is_400(self, client: httpx.Client, hook: RoutedHook) -> None:
        response = client.post(
            hook.path, content=b'{"a": "\xff"}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert "UTF-8" in response.json()["detail"]

    def test_nan_is_not_json(self, client: httpx.Client, hook: RoutedHook) -> None:
        response = client.post(
            hook.path, content=b'{"a": NaN}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400

    def test_form_that_is_not_utf8_is_400(self, client: httpx.Client, hook: RoutedHook) -> None:
        response = client.post(
            hook.path,
            content=b"a=\xff",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 400

    @pytest.mark.parametrize("header", ["Idempotency-Key", "webhook-id", "X-GitHub-Delivery"])
    def test_overlong_idempotency_key_is_400(
        self, client: httpx.Client, hook: RoutedHook, header: str
    ) -> None:
        response = client.post(hook.path, json={}, headers={header: "k" * 256})
        assert response.status_code == 400
        assert header in response.json()["detail"]


# Codec names Python knows that are not text encodings, or that cannot decode with "replace".
ODD_CHARSETS = ["base64", "rot13", "zlib", "hex", "uu", "bz2", "idna", "punycode", "klingon"]


class TestOddCharsets:
    @pytest.mark.parametrize("charset", ODD_CHARSETS)
    @pytest.mark.parametrize("media", ["application/json", "application/x-www-form-urlencoded"])
    def test_structured_body_in_an_odd_charset_is_400(
        self, client: httpx.Client, hook: RoutedHook, charset: str, media: str
    ) -> None:
        response = client.post(
            hook.path, content=b"a=%ff", headers={"content-type": f"{media}; charset={charset}"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("malformed")
