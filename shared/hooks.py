"""The webhook routing record: what ingest needs to accept a request without PostgreSQL.

The workflows service derives each workflow's webhook token, stores only its SHA-256, and mirrors
this record into Redis under the hash. Ingest hashes the token from the URL and reads the record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, NotRequired, TypedDict

import orjson

HOOK_KEY_PREFIX = "automateos:hook:"


class SignatureConfig(TypedDict, total=False):
    scheme: str  # "github" | "standard-webhooks" | "hmac-sha256"
    secret: str
    header: str  # hmac-sha256 only: which header carries the hex digest


class HookRecord(TypedDict):
    workflow_id: str
    owner_id: str
    version: int
    active: bool
    # Its secret is sealed (shared/crypto.py). A record without the flag predates encryption
    # and is replaced by a sealed one of the same version (services/workflows/hooks/service.py).
    sealed: NotRequired[bool]
    signature: SignatureConfig | None


def derive_token(key: bytes, workflow_id: str, nonce: str) -> str:
    """The webhook token: unguessable without the key, re-derivable so the URL can be shown."""
    digest = hmac.new(key, f"{workflow_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    """What we store and index: the token itself never is."""
    return hashlib.sha256(token.encode()).hexdigest()


def hook_key(hashed_token: str) -> str:
    return HOOK_KEY_PREFIX + hashed_token


def encode_record(record: HookRecord) -> bytes:
    return orjson.dumps(record)


def decode_record(raw: bytes | str) -> HookRecord | None:
    try:
        value: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(value, dict) or "workflow_id" not in value:
        return None
    record: HookRecord = value  # type: ignore[assignment]
    return record
