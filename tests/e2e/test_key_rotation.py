"""Signing-key rotation reaches the verifying services without restarting them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import jwt

from services.auth.keys import generate_key_file
from tests.conftest import register_user
from tests.fixtures.stack import Stack


class TestKeyRotation:
    def test_token_signed_by_a_new_key_is_accepted_by_running_services(self, stack: Stack) -> None:
        before = register_user(stack)
        with before.client("workflows") as api:
            assert api.get("/workflows").status_code == 200  # workflows has cached the JWKS

        new_key = generate_key_file(Path(stack.env["AUTOMATEOS_DATA_DIR"]) / "keys")

        deadline = time.monotonic() + 30
        kids: set[str] = set()
        with httpx.Client(base_url=stack.url("auth"), timeout=5) as auth:
            while time.monotonic() < deadline and new_key.stem not in kids:
                kids = {key["kid"] for key in auth.get("/.well-known/jwks.json").json()["keys"]}
                time.sleep(0.5)
        assert new_key.stem in kids, "auth did not pick up the new key"

        after = register_user(stack)
        assert jwt.get_unverified_header(after.tokens["access_token"])["kid"] == new_key.stem
        with after.client("workflows") as api:
            assert api.get("/workflows").status_code == 200
        with before.client("workflows") as api:
            # The old key stays published, so tokens it signed verify until they expire.
            assert api.get("/workflows").status_code == 200
