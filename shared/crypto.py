"""Encryption at rest of credentials and webhook signature secrets (AES-256-GCM).

`AUTOMATEOS_ENCRYPTION_KEYS` is a comma-separated list of `<key id>:<base64 of 32 bytes>`; the
first entry is the newest and encrypts, every entry decrypts. A sealed value is a string
`aos1:<key id>:<base64url of nonce + ciphertext + tag>`, so the key that opens it is named in
it and the re-encryption command finds the values still under an older key.

Every value is sealed with "associated data" naming what it belongs to (a credential's id, a
workflow's id): a ciphertext copied onto another row fails to open instead of lending its
plaintext to someone else.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED_PREFIX = "aos1:"
_NONCE_BYTES = 12
_KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyringError(ValueError):
    """`AUTOMATEOS_ENCRYPTION_KEYS` is missing or malformed (the message says which entry)."""


class DecryptionFailed(Exception):
    """A sealed value could not be opened: unknown key id, tampered, or sealed for another row.

    The message never contains key material or plaintext.
    """


def generate_key_entry(key_id: str | None = None) -> str:
    """A new `<id>:<base64 key>` entry (for `make up` and the docs' rotation recipe)."""
    kid = key_id or "k" + secrets.token_hex(4)
    return f"{kid}:{base64.b64encode(AESGCM.generate_key(bit_length=256)).decode()}"


def is_sealed(value: object) -> bool:
    """Whether `value` is a sealed string (as opposed to a legacy plaintext one)."""
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def key_id_of(sealed: str) -> str | None:
    """The id of the key a sealed value was encrypted under, None if it is not sealed."""
    if not is_sealed(sealed):
        return None
    return sealed[len(SEALED_PREFIX) :].split(":", 1)[0]


class Keyring:
    """The encryption keys of a deployment: seal with the newest, open with any."""

    def __init__(self, entries: list[tuple[str, bytes]]) -> None:
        if not entries:
            raise KeyringError("AUTOMATEOS_ENCRYPTION_KEYS holds no key")
        self._ciphers: dict[str, AESGCM] = {}
        for key_id, key in entries:
            if key_id in self._ciphers:
                raise KeyringError(f"AUTOMATEOS_ENCRYPTION_KEYS names key id {key_id!r} twice")
            self._ciphers[key_id] = AESGCM(key)
        self.newest_id = entries[0][0]

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Read `<id>:<base64 32 bytes>[,<id>:<base64 32 bytes>...]`; newest first."""
        entries: list[tuple[str, bytes]] = []
        for position, raw in enumerate(part.strip() for part in text.split(",")):
            if not raw:
                continue
            key_id, sep, encoded = raw.partition(":")
            if not sep or not _KEY_ID.match(key_id):
                raise KeyringError(
                    f"AUTOMATEOS_ENCRYPTION_KEYS entry {position}: expected <id>:<base64 key> "
                    "with an id of letters, digits, '_', '.' or '-'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(
                    f"AUTOMATEOS_ENCRYPTION_KEYS key {key_id!r} is not valid base64"
                ) from None
            if len(key) != 32:
                raise KeyringError(
                    f"AUTOMATEOS_ENCRYPTION_KEYS key {key_id!r} must be 32 bytes, got {len(key)}"
                )
            entries.append((key_id, key))
        return cls(entries)

    @property
    def key_ids(self) -> list[str]:
        """Every key id, newest first."""
        return list(self._ciphers)

    def seal(self, plaintext: bytes, context: bytes) -> str:
        """Encrypt `plaintext` under the newest key, bound to `context` (what it belongs to)."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.newest_id].encrypt(nonce, plaintext, context)
        payload = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{SEALED_PREFIX}{self.newest_id}:{payload}"

    def open(self, sealed: str, context: bytes) -> bytes:
        """Decrypt a value from `seal` with the same `context`; raises DecryptionFailed."""
        if not is_sealed(sealed):
            raise DecryptionFailed("value is not sealed")
        key_id, _, payload = sealed[len(SEALED_PREFIX) :].partition(":")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise DecryptionFailed(f"sealed under key {key_id!r}, which is not configured")
        try:
            raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context)
        except (InvalidTag, binascii.Error, ValueError):
            raise DecryptionFailed(f"sealed value does not open under key {key_id!r}") from None

    def reseal(self, sealed: str, context: bytes) -> str | None:
        """The value sealed under the newest key, or None when it already is."""
        if key_id_of(sealed) == self.newest_id:
            return None
        return self.seal(self.open(sealed, context), context)


def credential_context(credential_id: str) -> bytes:
    """Associated data of a credential's sealed data."""
    return f"credential:{credential_id}".encode()


def hook_secret_context(workflow_id: str) -> bytes:
    """Associated data of a workflow's sealed webhook signature secret."""
    return f"hook-secret:{workflow_id}".encode()
