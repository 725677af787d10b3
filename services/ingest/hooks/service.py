"""What happens to one delivery, from token to 202: the ingest service's decision flow.

Order matters: checks that need no I/O and no body come first (size by Content-Length, token),
the signature is checked on the raw bytes before any parsing, and the dedupe claim is taken only
for a delivery that is otherwise acceptable, so a rejected request never consumes a key.

Redis sees one write per accepted delivery: a MULTI with the RQ job, or, when the sender gave an
idempotency key, one script that claims the key and stores the job (store.py). A 202 goes out
only after Redis acknowledged it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry.trace import Span
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.ingest.hooks.admission import OverloadGauge, TokenBuckets
from services.ingest.hooks.debounce import Debouncer
from services.ingest.hooks.payload import (
    MalformedRequest,
    parse_body,
    parse_headers,
    parse_query,
    redact,
)
from services.ingest.hooks.resolver import Hook, HookLookupFailed, HookResolver
from services.ingest.hooks.signatures import SignatureRejected
from services.ingest.hooks.store import QueueUnavailable, RunStore
from shared.ids import uuid7
from shared.queue import RunJob
from shared.telemetry import RUN_ID, WEBHOOK_OUTCOME, WORKFLOW_ID, EntrySpan

log = logging.getLogger(__name__)

WEBHOOKS = Counter(
    "automateos_webhooks_total",
    "Webhook deliveries received by /hooks/{token}, by outcome.",
    ["outcome"],
)
# Children resolved once: a labels() lookup per request is measurable on the hot path.
_OUTCOMES = {
    name: WEBHOOKS.labels(name)
    for name in (
        "accepted",
        "duplicate",
        "bad_signature",
        "too_large",
        "unknown",
        "inactive",
        "bad_request",
        "unavailable",
        "overloaded",
        "rate_limited",
    )
}

MAX_IDEMPOTENCY_KEY_CHARS = 255
RETRY_AFTER_SECONDS = 5


class ThrottledLog:
    """One warning per interval for a repeating failure, with how many were suppressed.

    During an outage every request fails the same way; a line per request would bury the logs
    (and cost the hot path) without saying anything new.
    """

    def __init__(self, message: str, interval_s: float = 5.0) -> None:
        self._message = message
        self._interval = interval_s
        self._next = 0.0
        self._suppressed = 0

    def warn(self, error: str) -> None:
        """Log `error` unless a line went out less than `interval_s` ago."""
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        log.warning(self._message, extra={"error": error, "suppressed": self._suppressed})
        self._next = now + self._interval
        self._suppressed = 0


class BodyTooLarge(Exception):
    """The body grew past the limit while it was streamed in."""


BodyReader = Callable[[int], Awaitable[bytes | None]]
"""Reads the whole body up to a byte limit (BodyTooLarge beyond); None if the client left."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A response: status, JSON body, extra headers."""

    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    close: bool = False  # ask the server to drop the connection (body left unread)


def _error(status: int, detail: str, *headers: tuple[bytes, bytes], close: bool = False) -> Reply:
    return Reply(status, orjson.dumps({"detail": detail}), headers, close)


# Fixed replies are encoded once.
UNKNOWN = _error(404, "unknown webhook")
INACTIVE = _error(409, "workflow is inactive")
TOO_LARGE_DETAIL = "body exceeds the limit of {} bytes"
_RETRY_AFTER = (b"retry-after", str(RETRY_AFTER_SECONDS).encode())
QUEUE_UNAVAILABLE = _error(503, "queue unavailable, retry later", _RETRY_AFTER)
# nginx's code for a client that closed the connection before the answer. Nobody receives it,
# but the request metrics record it instead of taking the unanswered request for a 500.
CLIENT_GONE = _error(499, "client closed request")
LOOKUP_UNAVAILABLE = _error(503, "webhook lookup unavailable, retry later", _RETRY_AFTER)
OVERLOADED = {
    "backlog": _error(503, "too many runs queued, retry later", _RETRY_AFTER),
    "memory": _error(503, "the queue's storage is nearly full, retry later", _RETRY_AFTER),
}
# 429s by the seconds until the bucket has a token again (a handful of distinct values).
_RATE_LIMITED: dict[int, Reply] = {}


def _rate_limited(wait_s: int) -> Reply:
    reply = _RATE_LIMITED.get(wait_s)
    if reply is None:
        detail = "this webhook's rate limit is exceeded, retry later"
        reply = _error(429, detail, (b"retry-after", str(wait_s).encode()))
        if len(_RATE_LIMITED) < 64:
            _RATE_LIMITED[wait_s] = reply
    return reply


@dataclass(frozen=True, slots=True)
class Admission:
    """Ingest's overload gauge and webhook token buckets (admission.py), with the bucket of a
    webhook whose workflow sets no `rate_limit`."""

    gauge: OverloadGauge | None
    buckets: TokenBuckets
    default_per_s: float
    default_burst: int


class WebhookService:
    """Decides the reply to one delivery and, when it is accepted, stores its run's job."""

    def __init__(
        self,
        resolver: HookResolver,
        store: RunStore,
        max_body_bytes: int,
        admission: Admission | None = None,
        debouncer: Debouncer | None = None,
    ) -> None:
        self._resolver = resolver
        self._admission = admission
        self._store = store
        self._debouncer = debouncer
        self._max_body = max_body_bytes
        self._too_large = _error(413, TOO_LARGE_DETAIL.format(max_body_bytes), close=True)
        self._lookup_failures = ThrottledLog("webhook lookup failed")
        self._enqueue_failures = ThrottledLog("could not enqueue a webhook run")

    async def receive(
        self,
        token: str,
        method: str,
        raw_headers: list[tuple[bytes, bytes]],
        query_string: bytes,
        read_body: BodyReader,
        entry: EntrySpan,
    ) -> Reply:
        """The reply to a delivery (CLIENT_GONE when the client left before its body).

        `entry` is the request's span (endpoints.py): the outcome, workflow and run are noted
        on it (a no-op when it is not recorded), and an accepted job carries its traceparent.
        """
        span = entry.span
        received_at = datetime.now(UTC).isoformat()
        headers = parse_headers(raw_headers)

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            # Refused before reading a byte; the server closes the connection on the rest.
            return self._count(span, "too_large", self._too_large)

        try:
            hook = await self._resolver.resolve(token)
        except HookLookupFailed as exc:
            self._lookup_failures.warn(str(exc))
            return self._count(span, "unavailable", LOOKUP_UNAVAILABLE)
        if hook is None:
            return self._count(span, "unknown", UNKNOWN)
        span.set_attribute(WORKFLOW_ID, hook.workflow_id)
        if not hook.active:
            return self._count(span, "inactive", INACTIVE)
        refusal = self._admit(hook)
        if refusal is not None:
            return self._count(span, refusal[0], refusal[1])

        key: str | None = None
        for name, display in hook.idempotency_headers:
            key = headers.get(name) or None
            if key is not None:
                if len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
                    detail = f"{display} is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters"
                    return self._count(span, "bad_request", _error(400, detail))
                break

        try:
            body = await read_body(self._max_body)
        except BodyTooLarge:
            return self._count(span, "too_large", self._too_large)
        if body is None:
            return CLIENT_GONE

        if hook.verifier is not None:
            try:
                hook.verifier.verify(headers, body, time.time())
            except SignatureRejected as exc:
                return self._count(span, "bad_signature", _error(401, str(exc)))

        try:
            trigger_body = parse_body(body, headers.get("content-type"))
            query = parse_query(query_string)
        except MalformedRequest as exc:
            return self._count(span, "bad_request", _error(400, str(exc)))

        return await self._enqueue(
            hook, method, headers, query, trigger_body, key, received_at, entry
        )

    async def _enqueue(
        self,
        hook: Hook,
        method: str,
        headers: dict[str, str],
        query: dict[str, Any],
        body: Any,
        key: str | None,
        received_at: str,
        entry: EntrySpan,
    ) -> Reply:
        span = entry.span
        # Secrets never reach the run record: the job is the run record's source.
        redact(headers, hook.redacted_headers)
        job: RunJob = {
            "run_id": str(uuid7()),
            "workflow_id": hook.workflow_id,
            "owner_id": hook.owner_id,
            "workflow_version": hook.version,
            "trigger": {
                "body": body,
                "headers": headers,
                "query": query,
                "method": method,
                "received_at": received_at,
            },
            "idempotency_key": key,
            # The request's span, so the worker's run span is its child (one trace per delivery).
            "traceparent": entry.traceparent(),
            "retry_of": None,
        }
        if hook.flow is not None:
            job["flow"] = hook.flow
        dedupe_key = hook.dedupe_prefix + hashlib.sha256(key.encode()).hexdigest() if key else None
        debounce = hook.flow.get("debounce") if hook.flow is not None else None
        try:
            if debounce is not None and self._debouncer is not None:
                run_id, duplicate = await self._debouncer.fold(job, debounce)
            else:
                run_id, duplicate = await self._store.store(job, dedupe_key)
        except (QueueUnavailable, RedisError, OSError, TimeoutError) as exc:
            self._enqueue_failures.warn(str(exc))
            return self._count(span, "unavailable", QUEUE_UNAVAILABLE)
        except (ValueError, RecursionError):
            # orjson parsed it, but the queue's JSON encoder cannot nest that deep.
            return self._count(span, "bad_request", _error(400, "body is nested too deeply"))
        # The run this reply names: for a duplicate, the first delivery's.
        span.set_attribute(RUN_ID, run_id)
        location = (b"location", f"/runs/{run_id}".encode())
        if debounce is not None:
            # Folded or first of its key: the answer names the run the delivery joined.
            payload = orjson.dumps({"run_id": run_id, "debounced": True, "joined": duplicate})
            return self._count(span, "accepted", Reply(202, payload, (location,)))
        payload = orjson.dumps({"run_id": run_id})
        if duplicate:
            replayed = (b"idempotent-replayed", b"true")
            return self._count(span, "duplicate", Reply(202, payload, (location, replayed)))
        return self._count(span, "accepted", Reply(202, payload, (location,)))

    def _admit(self, hook: Hook) -> tuple[str, Reply] | None:
        """(outcome, reply) when the delivery is refused before its body is read."""
        admission = self._admission
        if admission is None:
            return None
        if admission.gauge is not None:
            reason = admission.gauge.overloaded()
            if reason is not None:
                return "overloaded", OVERLOADED[reason]
        limit = hook.rate_limit
        per_s, burst = (
            (limit["per_s"], limit["burst"])
            if limit is not None
            else (admission.default_per_s, admission.default_burst)
        )
        wait_s = admission.buckets.take(hook.workflow_id, per_s, burst)
        if wait_s:
            return "rate_limited", _rate_limited(wait_s)
        return None

    @staticmethod
    def _count(span: Span, outcome: str, reply: Reply) -> Reply:
        _OUTCOMES[outcome].inc()
        span.set_attribute(WEBHOOK_OUTCOME, outcome)
        return reply
