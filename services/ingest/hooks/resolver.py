"""Token → workflow: an in-process cache over Redis, over the workflows service.

The hot path is a dict lookup: records are cached for `hook_cache_seconds` (0.5 s), short enough
that a rotated token or a deactivated workflow stops being accepted within a second, long enough
that a busy webhook costs Redis one GET per half second instead of one per request. Unknown
tokens are cached the same way, so a sender hammering a revoked URL costs nothing either.

On a Redis miss (the record was never mirrored, or Redis lost it) we ask the workflows service,
which reads PostgreSQL. We never write its answer back to Redis: the workflows service owns those
keys, and a write-back racing a rotation could resurrect a revoked token.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx
from redis.exceptions import RedisError

from services.ingest.hooks.payload import ALWAYS_REDACTED, IDEMPOTENCY_HEADERS
from services.ingest.hooks.signatures import Verifier, build_verifier
from services.ingest.leanredis import LeanRedis
from shared.crypto import DecryptionFailed, Keyring, hook_secret_context, is_sealed
from shared.flow import FlowSpec, spec_of
from shared.hooks import (
    HookRecord,
    RateLimit,
    SignatureConfig,
    decode_record,
    hook_key,
    token_hash,
)

log = logging.getLogger(__name__)

DEDUPE_KEY_PREFIX = "automateos:dedupe:"
# A token is what fits in a URL path segment unescaped; ours are 43 base64url characters. Anything
# else cannot be one of ours, so it is unknown without costing Redis or the workflows service.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{1,256}")

RecordSource = Callable[[str], Awaitable[HookRecord | None]]


class HookLookupFailed(Exception):
    """Neither Redis nor the workflows service could say whether the token exists (→ 503)."""


@dataclass(frozen=True, slots=True)
class Hook:
    """A routing record compiled once for the hot path: the verifier is built, the secret
    decoded, the headers to redact and the dedupe key prefix computed."""

    workflow_id: str
    owner_id: str
    version: int
    active: bool
    verifier: Verifier | None
    redacted_headers: frozenset[str]
    dedupe_prefix: str
    # (lower-case name, display name) of the headers whose value is the dedupe key, in order.
    idempotency_headers: tuple[tuple[str, str], ...] = IDEMPOTENCY_HEADERS
    # The workflow's own token bucket; None: ingest's default (admission.py).
    rate_limit: RateLimit | None = None
    # The workflow's flow fields (shared/flow.py), copied into each run's job; None for most.
    flow: FlowSpec | None = None


def _opened(signature: SignatureConfig | None, workflow_id: str, keyring: Keyring | None) -> Any:
    # The secret travels sealed (PostgreSQL, Redis, the internal API) and is opened only here,
    # into this process's memory; a legacy plaintext record (before the upgrade) still works.
    if not signature or not is_sealed(signature.get("secret")):
        return signature
    if keyring is None:
        return {**signature, "secret": ""}
    try:
        secret = keyring.open(signature["secret"], hook_secret_context(workflow_id)).decode()
    except DecryptionFailed as exc:
        log.warning(
            "webhook secret cannot be decrypted: %s", exc, extra={"workflow_id": workflow_id}
        )
        secret = ""
    # An empty secret makes a verifier that rejects every delivery (fails closed).
    return {**signature, "secret": secret}


def compile_record(record: HookRecord, keyring: Keyring | None = None) -> Hook | None:
    """The `Hook` for a routing record, or None if the record is malformed."""
    workflow_id = record.get("workflow_id")
    owner_id = record.get("owner_id")
    version = record.get("version")
    if not isinstance(workflow_id, str) or not isinstance(owner_id, str):
        return None
    if not isinstance(version, int) or isinstance(version, bool):
        return None
    verifier = build_verifier(_opened(record.get("signature"), workflow_id, keyring))
    redacted = ALWAYS_REDACTED | verifier.secret_headers if verifier else ALWAYS_REDACTED
    return Hook(
        workflow_id=workflow_id,
        owner_id=owner_id,
        version=version,
        # Anything but an explicit true is inactive: a half-written record must not accept.
        active=record.get("active") is True,
        verifier=verifier,
        redacted_headers=redacted,
        dedupe_prefix=f"{DEDUPE_KEY_PREFIX}{workflow_id}:",
        idempotency_headers=_key_order(verifier),
        rate_limit=_rate_limit(record.get("rate_limit")),
        flow=spec_of(record.get("flow")),
    )


def _rate_limit(value: object) -> RateLimit | None:
    # Validated at save; a malformed value here (written by hand) falls back to the default.
    if not isinstance(value, dict):
        return None
    per_s, burst = value.get("per_s"), value.get("burst")
    if not isinstance(per_s, int | float) or isinstance(per_s, bool) or per_s <= 0:
        return None
    if not isinstance(burst, int) or isinstance(burst, bool) or burst < 1:
        return None
    return {"per_s": float(per_s), "burst": burst}


def _key_order(verifier: Verifier | None) -> tuple[tuple[str, str], ...]:
    """The signature scheme's delivery id first: a replayed delivery keeps its signed id, but
    anyone can add a fresh `Idempotency-Key` to it."""
    delivery = verifier.delivery_header if verifier is not None else None
    if delivery is None:
        return IDEMPOTENCY_HEADERS
    first = [pair for pair in IDEMPOTENCY_HEADERS if pair[0] == delivery]
    return (*first, *(pair for pair in IDEMPOTENCY_HEADERS if pair[0] != delivery))


class InternalHookSource:
    """`GET {workflows}/internal/hooks/{token_hash}` with the shared internal token."""

    def __init__(self, client: httpx.AsyncClient, internal_token: str) -> None:
        self._client = client
        self._headers = {"X-Internal-Token": internal_token}

    async def fetch(self, hashed: str) -> HookRecord | None:
        """The record (200), None when the workflows service does not know the hash (404).

        Anything else (down, slow, 5xx, refused credentials) raises HookLookupFailed: we cannot
        tell an unknown token from an outage, and a 404 would make senders give up.
        """
        try:
            response = await self._client.get(f"/internal/hooks/{hashed}", headers=self._headers)
        except httpx.HTTPError as exc:
            raise HookLookupFailed(f"workflows service unreachable: {exc!r}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise HookLookupFailed(f"workflows service answered {response.status_code}")
        record = decode_record(response.content)
        if record is None:
            raise HookLookupFailed("workflows service sent a malformed routing record")
        return record


class HookResolver:
    """Resolves webhook tokens with a bounded, short-lived cache (positive and negative)."""

    def __init__(
        self,
        redis: LeanRedis,
        fallback: RecordSource,
        ttl_s: float,
        *,
        max_entries: int = 10_000,
        max_fallback_calls: int = 16,
        clock: Callable[[], float] = time.monotonic,
        keyring: Keyring | None = None,
    ) -> None:
        self._redis = redis
        self._keyring = keyring
        self._fallback = fallback
        self._ttl = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        # token → (expires at, hook or None for unknown). Insertion order is expiry order but
        # for slow reads; eviction relies on it, lookups check the expiry themselves.
        self._entries: OrderedDict[str, tuple[float, Hook | None]] = OrderedDict()
        # One lookup per token at a time: a burst on a cold cache costs one GET, not hundreds.
        self._inflight: dict[str, asyncio.Task[Hook | None]] = {}
        # A flood of random tokens must not become a flood of calls to the workflows service.
        self._fallback_slots = asyncio.Semaphore(max_fallback_calls)

    async def resolve(self, token: str) -> Hook | None:
        """The hook for a URL token, None if unknown; raises HookLookupFailed on an outage."""
        # Keyed by the token itself: a cache hit then costs no hashing. The process holds each
        # request's token in memory anyway; Redis and the logs only ever see its hash.
        entry = self._entries.get(token)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        if _TOKEN.fullmatch(token) is None:
            return None
        task = self._inflight.get(token)
        if task is None:
            task = asyncio.create_task(self._load(token))
            self._inflight[token] = task
            task.add_done_callback(partial(self._landed, token))
        # Shielded: one impatient client going away must not cancel the others' lookup.
        return await asyncio.shield(task)

    def _landed(self, token: str, task: asyncio.Task[Hook | None]) -> None:
        if self._inflight.get(token) is task:
            del self._inflight[token]
        if not task.cancelled():
            task.exception()  # retrieved here, so an unwaited failure is not logged as lost

    async def _load(self, token: str) -> Hook | None:
        # The entry expires a TTL after the read began, however long the read took, so what
        # was true at that moment is never served for longer than the TTL.
        read_at = self._clock()
        hashed = token_hash(token)
        try:
            raw = await self._redis.call("GET", hook_key(hashed))
        except (RedisError, OSError, TimeoutError) as exc:
            # Without Redis we could not enqueue anyway: fail fast instead of asking workflows.
            raise HookLookupFailed(f"redis unavailable: {exc!r}") from exc
        record = decode_record(raw) if raw is not None else None
        hook = compile_record(record, self._keyring) if record is not None else None
        if hook is None:
            if record is not None:
                log.warning("malformed routing record in redis; asking the workflows service")
            async with self._fallback_slots:
                record = await self._fallback(hashed)
            if record is not None:
                hook = compile_record(record, self._keyring)
                if hook is None:
                    raise HookLookupFailed("workflows service sent a malformed routing record")
        self._store(token, hook, read_at)
        return hook

    def _store(self, token: str, hook: Hook | None, read_at: float) -> None:
        now = self._clock()
        self._entries.pop(token, None)
        self._entries[token] = (read_at + self._ttl, hook)
        # Entries share one TTL, so the oldest is first: drop expired ones and, if a flood of
        # distinct tokens still overfills the cache, the oldest live ones.
        entries = self._entries
        while entries:
            first_expiry = next(iter(entries.values()))[0]
            if first_expiry > now and len(entries) <= self._max_entries:
                break
            entries.popitem(last=False)
