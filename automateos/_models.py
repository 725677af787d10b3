"""What the API answers, as typed objects. Unknown fields are kept (`model_extra`), so a newer
server never breaks an older client."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

# Ended runs: nothing about them changes any more.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Tokens(_Model):
    """An access/refresh token pair; `expires_at` is when the access token expires (epoch s)."""

    access_token: str = Field(repr=False)
    refresh_token: str = Field(repr=False)
    expires_at: float = 0.0

    @classmethod
    def from_pair(cls, pair: dict[str, Any]) -> Tokens:
        """From `/auth/login` or `/auth/refresh`, whose `expires_in` counts from now."""
        return cls(
            access_token=pair["access_token"],
            refresh_token=pair["refresh_token"],
            expires_at=time.time() + float(pair.get("expires_in", 0)),
        )

    def expired(self, margin_s: float = 30.0) -> bool:
        return time.time() >= self.expires_at - margin_s


class User(_Model):
    id: uuid.UUID
    email: str


class Page(_Model, Generic[T]):
    """One page of a list; pass `next_cursor` back as `cursor` for the next (None: the last)."""

    items: list[T]
    next_cursor: str | None = None


class Workflow(_Model):
    id: uuid.UUID
    name: str
    description: str = ""
    active: bool = True
    version: int
    nodes: list[dict[str, Any]]
    trigger: dict[str, Any] = Field(default_factory=dict)
    retention: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str = ""
    next_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class RunSummary(_Model):
    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    status: str
    attempt: int = 0
    error: str | None = None
    retry_of: uuid.UUID | None = None
    accepted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    resume_at: datetime | None = None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Step(_Model):
    node_id: str
    type: str
    status: str
    input: Any = None
    output: Any = None
    error: str | None = None
    started_at: datetime | None = None
    duration_ms: int | None = None
    attempt: int = 1


class Run(RunSummary):
    """A run with its trigger input and its steps in execution order."""

    trigger: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(default_factory=list)


class RunAccepted(_Model):
    run_id: uuid.UUID


class Credential(_Model):
    """A stored credential: its values are write-only and never come back."""

    name: str
    type: str
    fields_set: list[str]
    created_at: datetime
    updated_at: datetime
