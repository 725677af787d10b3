"""The Ed25519 signing keys and the JWKS built from them.

Keys are PEM files in the keys folder; a file's stem is its key id and the greatest stem signs
(name them by date: `2026-11-26.pem`). To rotate, add a newer file: the old key stays in the JWKS
so tokens it signed verify until they expire, then remove it. The folder is re-read at most every
`reload_interval_s`, so a rotation through a mounted Secret needs no restart. In local mode a key
is generated on first start so `make up` needs no setup.
"""

from __future__ import annotations

import base64
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.tokens import InvalidToken


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, str]:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        }


def generate_key_file(folder: Path) -> Path:
    """Write a new private key named by the current UTC time (so it sorts newest)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}.pem"
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


class KeyRing:
    """All keys of the folder; implements `shared.tokens.KeySource` for auth's own checks."""

    def __init__(self, folder: Path, *, generate_if_empty: bool, reload_interval_s: float = 10):
        self.folder = folder
        self.generate_if_empty = generate_if_empty
        self.reload_interval_s = reload_interval_s
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at = 0.0
        self.reload()

    def reload(self) -> None:
        files = sorted(self.folder.glob("*.pem")) if self.folder.is_dir() else []
        if not files and self.generate_if_empty:
            generate_key_file(self.folder)
            files = sorted(self.folder.glob("*.pem"))
        if not files:
            raise RuntimeError(f"no signing keys (*.pem) in {self.folder}")
        keys = {}
        for path in files:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                raise RuntimeError(f"{path} is not an Ed25519 private key")
            keys[path.stem] = SigningKey(path.stem, private)
        self._keys = keys
        self._loaded_at = time.monotonic()

    def _fresh(self) -> dict[str, SigningKey]:
        if time.monotonic() - self._loaded_at > self.reload_interval_s:
            self.reload()
        return self._keys

    @property
    def current(self) -> SigningKey:
        keys = self._fresh()
        return keys[max(keys)]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self._fresh().values()]}

    async def key_for(self, kid: str) -> Any:
        key = self._fresh().get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return key.public
