"""Webhook signature verification: `github`, `standard-webhooks` and `hmac-sha256`.

A verifier is built once per routing record (the secret decoded, the header name lower-cased) and
cached with it, so a request pays only the HMAC over its body. Every comparison is constant-time,
and every check runs on the raw body bytes, before anything parses them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Mapping
from typing import Protocol

from shared.hooks import SignatureConfig

log = logging.getLogger(__name__)

# Standard Webhooks' replay window: a captured delivery cannot be replayed after 5 minutes.
TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
DEFAULT_HMAC_HEADER = "X-Signature-256"


class SignatureRejected(Exception):
    """The delivery is not proven to come from the sender; the message is the 401's detail."""


class Verifier(Protocol):
    """Checks one scheme's signature over a request's raw body."""

    @property
    def secret_headers(self) -> frozenset[str]:
        """Lower-case names of the headers this scheme's signatures travel in (redacted)."""
        ...

    @property
    def delivery_header(self) -> str | None:
        """Lower-case name of the sender's delivery id header, when the scheme has one.

        It is the dedupe key whatever else the request carries: an `Idempotency-Key` added by
        whoever replays a captured delivery must not make it new.
        """
        ...

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Return if the signature is valid; raise SignatureRejected saying what is wrong."""
        ...


def _digest_matches(expected_hex: str, provided: str) -> bool:
    # Both sides as bytes: compare_digest refuses non-ASCII str, and a sender may send anything.
    return hmac.compare_digest(expected_hex.encode(), provided.strip().lower().encode())


class GitHubVerifier:
    """`X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>` (GitHub, Gitea, many more)."""

    secret_headers = frozenset({"x-hub-signature-256"})
    # GitHub signs only the body, so this id is the sender's but not proven: docs/guarantees.md.
    delivery_header = "x-github-delivery"

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Check `X-Hub-Signature-256` against the HMAC of `body`."""
        provided = headers.get("x-hub-signature-256")
        if not provided:
            raise SignatureRejected("missing X-Hub-Signature-256 header")
        prefix, _, digest = provided.partition("=")
        if prefix.strip().lower() != "sha256" or not digest:
            raise SignatureRejected("malformed X-Hub-Signature-256 header: expected sha256=<hex>")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not _digest_matches(expected, digest):
            raise SignatureRejected("X-Hub-Signature-256 does not match the body")


class HmacSha256Verifier:
    """A hex HMAC-SHA256 of the body, optionally `sha256=`-prefixed, in a configurable header."""

    delivery_header = None

    def __init__(self, secret: bytes, header: str) -> None:
        self._secret = secret
        self._display = header
        self._header = header.lower()
        self.secret_headers = frozenset({self._header})

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Check the configured header against the HMAC of `body`."""
        provided = headers.get(self._header)
        if not provided:
            raise SignatureRejected(f"missing {self._display} header")
        prefix, sep, digest = provided.partition("=")
        if sep:
            if prefix.strip().lower() != "sha256":
                raise SignatureRejected(
                    f"malformed {self._display} header: expected <hex> or sha256=<hex>"
                )
            provided = digest
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not _digest_matches(expected, provided):
            raise SignatureRejected(f"{self._display} does not match the body")


class StandardWebhooksVerifier:
    """Standard Webhooks (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
    `webhook-signature: v1,<base64> [v1,<base64> ...]` over `<id>.<timestamp>.<body>`.

    Several signatures may be sent while a sender rotates its key; any valid one is enough.
    """

    secret_headers = frozenset({"webhook-signature"})
    # Signed together with the timestamp and the body: a replay cannot change it.
    delivery_header = "webhook-id"
    _required = ("webhook-id", "webhook-timestamp", "webhook-signature")

    def __init__(self, secret: str) -> None:
        self._key = self.decode_secret(secret)

    @staticmethod
    def decode_secret(secret: str) -> bytes:
        """`whsec_<base64>` is the spec's form; anything else is taken as the raw key."""
        if secret.startswith("whsec_"):
            try:
                return base64.b64decode(secret[len("whsec_") :], validate=True)
            except binascii.Error:
                log.warning("standard-webhooks secret has a whsec_ prefix but is not base64")
        return secret.encode()

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Check the timestamp window, then whether any v1 signature matches."""
        missing = [name for name in self._required if not headers.get(name)]
        if missing:
            raise SignatureRejected(f"missing {', '.join(missing)} header")
        msg_id = headers["webhook-id"]
        timestamp = headers["webhook-timestamp"].strip()
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise SignatureRejected("malformed webhook-timestamp header: not an integer") from None
        if abs(now - sent_at) > TIMESTAMP_TOLERANCE_SECONDS:
            raise SignatureRejected("stale webhook-timestamp: outside the 5-minute tolerance")
        mac = hmac.new(self._key, f"{msg_id}.{timestamp}.".encode(), hashlib.sha256)
        mac.update(body)  # no copy of a body that may be megabytes
        expected = base64.b64encode(mac.digest())
        candidates = 0
        for entry in headers["webhook-signature"].split():
            # A proxy that merged repeated headers leaves a comma between entries.
            version, _, signature = entry.rstrip(",").partition(",")
            if version != "v1":
                continue  # v1a (asymmetric) and future versions: not ours to check
            candidates += 1
            if hmac.compare_digest(expected, signature.encode()):
                return
        if not candidates:
            raise SignatureRejected("malformed webhook-signature header: no v1,<base64> entry")
        raise SignatureRejected("webhook-signature does not match the body")


class MisconfiguredVerifier:
    """Fails closed: a workflow that asks for a signature we cannot check accepts nothing."""

    secret_headers: frozenset[str] = frozenset()
    delivery_header = None

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Always reject, saying the configuration (not the sender) is at fault."""
        raise SignatureRejected(f"webhook signature is misconfigured: {self._reason}")


def build_verifier(config: SignatureConfig | None) -> Verifier | None:
    """The verifier a routing record asks for, or None when it asks for no signature."""
    if not config:
        return None
    scheme = config.get("scheme")
    secret = config.get("secret") or ""
    if not secret:
        return MisconfiguredVerifier("no secret")
    if scheme == "github":
        return GitHubVerifier(secret.encode())
    if scheme == "standard-webhooks":
        return StandardWebhooksVerifier(secret)
    if scheme == "hmac-sha256":
        return HmacSha256Verifier(secret.encode(), config.get("header") or DEFAULT_HMAC_HEADER)
    return MisconfiguredVerifier(f"unknown scheme {scheme!r}")
