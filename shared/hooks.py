"""The webhook routing record: what ingest needs to accept a request without PostgreSQL.

The workflows service derives each workflow's webhook token, stores only its SHA-256, and mirrors
this record into Redis under the hash. Ingest hashes the token from the URL and reads the record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any, NotRequired, TypedDict

import orjson

HOOK_KEY_PREFIX = "automateos:hook:"


class SignatureConfig(TypedDict, total=False):
    scheme: str  # "github" | "standard-webhooks" | "hmac-sha256"
    secret: str
    header: str  # hmac-sha256 only: which header carries the hex digest


class RateLimit(TypedDict):
    """A webhook's token bucket: `per_s` deliveries a second, bursts of up to `burst`."""

    per_s: float
    burst: int


class HookRecord(TypedDict):
    workflow_id: str
    owner_id: str
    version: int
    active: bool
    # Its secret is sealed (shared/crypto.py). A record without the flag predates encryption
    # and is replaced by a sealed one of the same version (services/workflows/hooks/service.py).
    sealed: NotRequired[bool]
    signature: SignatureConfig | None
    # The workflow's `rate_limit`; absent or null: the ingest default.
    rate_limit: NotRequired[RateLimit | None]
    # The workflow's flow fields (shared/flow.py), when it has any.
    flow: NotRequired[dict[str, Any]]


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


# A run's resume URL: `<public url>/hooks/resume/<token>`. The token carries the run id and a
# MAC over it, so ingest verifies it without a lookup and nobody can forge one for another
# run; "resume:" separates these MACs from webhook tokens derived from the same key.
RESUME_PATH = "/hooks/resume/"
_RESUME_MAC_BYTES = 16


def _resume_mac(key: bytes, run_id: bytes) -> bytes:
    return hmac.new(key, b"resume:" + run_id, hashlib.sha256).digest()[:_RESUME_MAC_BYTES]


def resume_token(key: bytes, run_id: str) -> str:
    """The secret token of a run's resume URL (the same for every delivery of the run)."""
    raw = uuid.UUID(run_id).bytes
    return base64.urlsafe_b64encode(raw + _resume_mac(key, raw)).rstrip(b"=").decode()


def resume_url(public_url: str, key: bytes, run_id: str) -> str:
    """The URL a `wait_for_callback` step of run `run_id` waits to be POSTed to."""
    return public_url.rstrip("/") + RESUME_PATH + resume_token(key, run_id)


def run_of_resume_token(key: bytes, token: str) -> str | None:
    """The run id a resume token was minted for, or None when it is not a valid token."""
    if len(token) != 43:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (ValueError, TypeError):
        return None
    run_id, mac = raw[:16], raw[16:]
    if len(raw) != 16 + _RESUME_MAC_BYTES or not hmac.compare_digest(mac, _resume_mac(key, run_id)):
        return None
    return str(uuid.UUID(bytes=run_id))


def callback_key(run_id: str) -> str:
    """Redis key of a run's callback (its states and lifetimes: `shared.waits`)."""
    return f"automateos:callback:{run_id}"
