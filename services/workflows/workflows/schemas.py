"""Request and response bodies of the workflow API.

Inputs refuse unknown fields (a typo must not be silently dropped). The signature secret is
write-only: it is accepted here, stored, mirrored to ingest, and never part of any output model.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.workflows.workflows.flow_schemas import (
    ConcurrencyIn,
    DebounceIn,
    PriorityIn,
    ThrottleIn,
)
from shared import schedules
from shared.secret_strength import entropy_bits, is_pattern

SignatureScheme = Literal["github", "standard-webhooks", "hmac-sha256"]
DEFAULT_HMAC_HEADER = "X-Signature-256"
STANDARD_WEBHOOKS_PREFIX = "whsec_"

# A signing key an attacker cannot brute-force offline from one signed delivery: at least 16
# bytes, not a pattern, and not mostly one character (Shannon bits of its symbol frequencies;
# a random 16-character hex key has ~50, `aaaaaaaaaaaaaaab` has 5).
MIN_KEY_BYTES = 16
MIN_KEY_ENTROPY_BITS = 32

# An HTTP field name (RFC 9110 token), so ingest can look the header up as given.
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
# Another of the owner's workflows, by id or name (services/workflows/workflows/links.py).
WorkflowReference = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]


def _decodes_as_base64(value: str) -> bool:
    # Strict, exactly as ingest decodes it: what passes here, ingest can use.
    try:
        return bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False


def _weak_key(key: bytes) -> str | None:
    """Why a signing key (as ingest uses it: a whsec_ secret decoded) is too guessable."""
    if len(key) < MIN_KEY_BYTES:
        return f"the key must be at least {MIN_KEY_BYTES} bytes ({len(key)} given)"
    if is_pattern(key):
        return "the key is a repeated or sequential pattern"
    if entropy_bits(key) < MIN_KEY_ENTROPY_BITS:
        return "the key is made of too few distinct characters"
    return None


class SignatureIn(BaseModel):
    """How ingest verifies deliveries. Omit `secret` on an update to keep the stored one."""

    model_config = ConfigDict(extra="forbid")

    scheme: SignatureScheme
    # repr=False: a logged or printed model must not carry the secret.
    secret: str | None = Field(default=None, min_length=16, max_length=512, repr=False)
    header: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _scheme_rules(self) -> SignatureIn:
        if self.header is not None:
            if self.scheme != "hmac-sha256":
                raise ValueError("'header' applies to the hmac-sha256 scheme only")
            if not _HEADER_NAME.match(self.header):
                raise ValueError("'header' must be an HTTP header name")
        # `whsec_<base64>` is the spec's form and ingest verifies with the decoded key; one that
        # does not decode would make every delivery fail. Other values are raw keys.
        secret = self.secret or ""
        key: bytes = secret.encode()
        if self.scheme == "standard-webhooks" and secret.startswith(STANDARD_WEBHOOKS_PREFIX):
            encoded = secret.removeprefix(STANDARD_WEBHOOKS_PREFIX)
            if not _decodes_as_base64(encoded):
                raise ValueError("a 'whsec_' secret must be followed by valid base64")
            key = base64.b64decode(encoded)
        if self.secret is not None:
            problem = _weak_key(key)
            if problem is not None:
                raise ValueError(f"the signature secret is too weak: {problem}")
        return self


class TriggerIn(BaseModel):
    """A webhook (optionally signed) or a schedule: `cron` (+ `timezone`, default UTC) or
    `every` ("30s", "5m", "1h"). Every workflow keeps its webhook URL either way."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["webhook", "schedule"] = "webhook"
    signature: SignatureIn | None = None
    cron: Annotated[str, StringConstraints(max_length=200)] | None = None
    timezone: Annotated[str, StringConstraints(max_length=64)] | None = None
    every: Annotated[str, StringConstraints(max_length=32)] | None = None

    @model_validator(mode="after")
    def _fields_of_type(self) -> TriggerIn:
        clock = [name for name in ("cron", "timezone", "every") if getattr(self, name) is not None]
        if self.type == "webhook":
            if clock:
                raise ValueError(f"{clock} apply to schedule triggers only")
            return self
        if self.signature is not None:
            raise ValueError("'signature' applies to webhook triggers only")
        if (self.cron is None) == (self.every is None):
            raise ValueError("a schedule takes exactly one of 'cron' or 'every'")
        if self.cron is not None:
            schedules.zone(self.timezone or "UTC")
            schedules.check_cron(self.cron, self.timezone or "UTC")
        else:
            if self.timezone is not None:
                raise ValueError("'timezone' applies to 'cron' schedules only")
            schedules.parse_every(self.every or "")
        return self


class RetentionIn(BaseModel):
    """This workflow's run history retention; an omitted field takes the deployment default."""

    model_config = ConfigDict(extra="forbid")

    days: Annotated[float, Field(gt=0, le=36500)] | None = None
    max_runs: Annotated[int, Field(ge=1, le=10_000_000)] | None = None
    # "failed": the steps (inputs, outputs) of runs that did not fail are deleted soon after
    # they finish; the runs themselves stay, as summaries.
    keep_details: Literal["all", "failed"] = "all"


class RateLimitIn(BaseModel):
    """The workflow's webhook token bucket: `per_s` deliveries a second, bursts up to `burst`
    (per ingest replica); beyond it, 429 with Retry-After (docs/flow-control.md)."""

    model_config = ConfigDict(extra="forbid")

    per_s: Annotated[float, Field(gt=0, le=100_000)]
    burst: Annotated[int, Field(ge=1, le=1_000_000)]


class WorkflowIn(BaseModel):
    """The whole definition (POST and PUT): a missing optional field takes its default."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    active: bool = True
    # Required, even when empty: a PUT that forgot `nodes` must not wipe the definition.
    # Entries are checked against the node registry by the service (422 naming node and field).
    nodes: list[Any]
    trigger: TriggerIn | None = None
    retention: RetentionIn | None = None
    # The workflow that runs when a run of this one fails (docs/nodes.md, "Error workflows").
    on_error: WorkflowReference | None = None
    rate_limit: RateLimitIn | None = None
    # Flow control (flow_schemas.py, docs/flow-control.md).
    concurrency: ConcurrencyIn | None = None
    throttle: ThrottleIn | None = None
    debounce: DebounceIn | None = None
    priority: PriorityIn = "normal"


class WorkflowPatch(BaseModel):
    """A partial change (PATCH): only the fields present are changed."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    active: bool | None = None
    nodes: list[Any] | None = None
    # `null` resets the trigger to an unsigned webhook; an object replaces it as a whole.
    trigger: TriggerIn | None = None
    # `null` returns to the deployment's defaults.
    retention: RetentionIn | None = None
    # `null` removes the error workflow.
    on_error: WorkflowReference | None = None
    # `null` returns to the deployment's default bucket.
    rate_limit: RateLimitIn | None = None
    # `null` removes that flow-control field.
    concurrency: ConcurrencyIn | None = None
    throttle: ThrottleIn | None = None
    debounce: DebounceIn | None = None
    priority: PriorityIn | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> WorkflowPatch:
        for name in ("name", "description", "active", "nodes"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"'{name}' cannot be null")
        return self


class SignatureOut(BaseModel):
    scheme: SignatureScheme
    header: str | None = None
    secret_set: bool = True


class TriggerOut(BaseModel):
    type: Literal["webhook"] = "webhook"
    signature: SignatureOut | None = None


class ScheduleTriggerOut(BaseModel):
    type: Literal["schedule"] = "schedule"
    cron: str | None = None
    timezone: str | None = None
    every: str | None = None


class WorkflowOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    active: bool
    version: int
    nodes: list[dict[str, Any]]
    trigger: TriggerOut | ScheduleTriggerOut
    retention: RetentionIn
    on_error: str | None = None
    rate_limit: RateLimitIn | None = None
    concurrency: ConcurrencyIn | None = None
    throttle: ThrottleIn | None = None
    debounce: DebounceIn | None = None
    priority: PriorityIn = "normal"
    webhook_url: str
    # The next tick of an active schedule trigger, else null.
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class WorkflowPage(BaseModel):
    items: list[WorkflowOut]
    next_cursor: str | None


class VersionOut(BaseModel):
    """One immutable snapshot of a workflow's nodes; runs record the version they ran."""

    version: int
    nodes: list[dict[str, Any]]
    created_at: datetime


class VersionPage(BaseModel):
    items: list[VersionOut]
    # Pass back as `before` for older versions; null on the last page.
    next_before: int | None
