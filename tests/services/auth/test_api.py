"""The auth API over HTTP against a real auth process, PostgreSQL and Redis."""

from __future__ import annotations

import secrets
import time

import httpx
import jwt
import pytest

from tests.conftest import ApiUser
from tests.fixtures.stack import Stack


def _email() -> str:
    return f"a-{secrets.token_hex(6)}@example.com"


class TestRegister:
    def test_creates_user(self, auth: httpx.Client) -> None:
        email = _email()
        response = auth.post("/auth/register", json={"email": email, "password": "long enough"})
        assert response.status_code == 201
        assert response.json()["email"] == email
        assert "password" not in response.text

    def test_taken_email_keeps_its_account_case_insensitively(self, auth: httpx.Client) -> None:
        email = _email()
        auth.post("/auth/register", json={"email": email, "password": "long enough"})
        again = auth.post("/auth/register", json={"email": email.upper(), "password": "other pw 1"})
        assert again.status_code == 201  # indistinguishable from a new account (test_leaks.py)
        taken = auth.post("/auth/login", json={"email": email, "password": "other pw 1"})
        assert taken.status_code == 401
        owner = auth.post("/auth/login", json={"email": email, "password": "long enough"})
        assert owner.status_code == 200

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"email": "not-an-email", "password": "long enough"}, "email"),
            ({"email": "x@example.com", "password": "short"}, "password"),
            ({"password": "long enough"}, "email"),
        ],
    )
    def test_rejects_bad_input_naming_the_field(
        self, auth: httpx.Client, body: dict[str, str], field: str
    ) -> None:
        response = auth.post("/auth/register", json=body)
        assert response.status_code == 422
        assert any(field in error["loc"] for error in response.json()["detail"])

    def test_user_can_log_in_the_moment_registration_answers(self, auth: httpx.Client) -> None:
        # The commit must happen before the 201 leaves, or a fast client races it.
        for _ in range(10):
            email = _email()
            auth.post("/auth/register", json={"email": email, "password": "long enough"})
            login = auth.post("/auth/login", json={"email": email, "password": "long enough"})
            assert login.status_code == 200, login.text

    def test_rejects_malformed_json(self, auth: httpx.Client) -> None:
        response = auth.post(
            "/auth/register", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert response.status_code == 422


class TestLogin:
    def test_returns_token_pair(self, user: ApiUser) -> None:
        assert user.tokens["token_type"] == "bearer"
        assert user.tokens["expires_in"] > 0
        assert user.tokens["refresh_token"] != user.tokens["access_token"]

    def test_wrong_password_is_401(self, auth: httpx.Client, user: ApiUser) -> None:
        response = auth.post("/auth/login", json={"email": user.email, "password": "wrong pass"})
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_unknown_email_is_401(self, auth: httpx.Client) -> None:
        response = auth.post("/auth/login", json={"email": _email(), "password": "whatever1"})
        assert response.status_code == 401

    def test_repeated_failures_are_throttled(self, auth: httpx.Client, user: ApiUser) -> None:
        for _ in range(5):
            auth.post("/auth/login", json={"email": user.email, "password": "wrong pass"})
        response = auth.post("/auth/login", json={"email": user.email, "password": user.password})
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 0


class TestMe:
    def test_returns_the_caller(self, user: ApiUser) -> None:
        with user.client("auth") as client:
            response = client.get("/auth/me")
        assert response.status_code == 200
        assert response.json()["email"] == user.email

    @pytest.mark.parametrize(
        "header",
        ["", "Bearer", "Bearer not.a.jwt", "Basic dXNlcjpwYXNz", "Bearer eyJhbGciOiJub25lIn0.e30."],
    )
    def test_rejects_missing_or_malformed_token(self, auth: httpx.Client, header: str) -> None:
        headers = {"Authorization": header} if header else {}
        response = auth.get("/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")

    def test_rejects_refresh_token_as_access_token(self, auth: httpx.Client, user: ApiUser) -> None:
        bearer = {"Authorization": f"Bearer {user.tokens['refresh_token']}"}
        assert auth.get("/auth/me", headers=bearer).status_code == 401

    def test_rejects_forged_token(self, auth: httpx.Client, user: ApiUser) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        kid = jwt.get_unverified_header(user.tokens["access_token"])["kid"]
        claims = jwt.decode(user.tokens["access_token"], options={"verify_signature": False})
        forged = jwt.encode(
            claims,
            Ed25519PrivateKey.generate(),
            algorithm="EdDSA",
            headers={"kid": kid, "typ": "at+jwt"},
        )
        response = auth.get("/auth/me", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401

    def test_rejects_expired_token(self, auth: httpx.Client, user: ApiUser, stack: Stack) -> None:
        from pathlib import Path

        from cryptography.hazmat.primitives import serialization

        keys_dir = Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "keys"
        newest = sorted(keys_dir.glob("*.pem"))[-1]
        private = serialization.load_pem_private_key(newest.read_bytes(), password=None)
        claims = jwt.decode(user.tokens["access_token"], options={"verify_signature": False})
        claims["exp"] = int(time.time()) - 60
        expired = jwt.encode(
            claims, private, algorithm="EdDSA", headers={"kid": newest.stem, "typ": "at+jwt"}
        )
        response = auth.get("/auth/me", headers={"Authorization": f"Bearer {expired}"})
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]


class TestRefresh:
    def test_rotates_the_pair(self, auth: httpx.Client, user: ApiUser) -> None:
        response = auth.post("/auth/refresh", json={"refresh_token": user.tokens["refresh_token"]})
        assert response.status_code == 200
        fresh = response.json()
        me = auth.get("/auth/me", headers={"Authorization": f"Bearer {fresh['access_token']}"})
        assert me.status_code == 200

    def test_reuse_revokes_the_family(self, auth: httpx.Client, user: ApiUser) -> None:
        first = auth.post("/auth/refresh", json={"refresh_token": user.tokens["refresh_token"]})
        replay = auth.post("/auth/refresh", json={"refresh_token": user.tokens["refresh_token"]})
        assert replay.status_code == 401
        # The thief's replay also kills the token the legitimate client got.
        later = auth.post("/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
        assert later.status_code == 401

    def test_access_token_is_not_a_refresh_token(self, auth: httpx.Client, user: ApiUser) -> None:
        response = auth.post("/auth/refresh", json={"refresh_token": user.tokens["access_token"]})
        assert response.status_code == 401


class TestJwks:
    def test_publishes_the_signing_key(self, auth: httpx.Client, user: ApiUser) -> None:
        keys = auth.get("/.well-known/jwks.json").json()["keys"]
        kid = jwt.get_unverified_header(user.tokens["access_token"])["kid"]
        assert any(key["kid"] == kid and key["alg"] == "EdDSA" for key in keys)
        assert all("d" not in key for key in keys)  # never the private part


class TestOperability:
    @pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
    def test_serves_operational_endpoints(self, auth: httpx.Client, path: str) -> None:
        assert auth.get(path).status_code == 200
