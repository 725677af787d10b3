"""Response bodies of the runs API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]


class StepOut(BaseModel):
    node_id: str
    type: str
    status: str
    input: Any
    output: Any
    error: str | None
    started_at: datetime | None
    duration_ms: int | None
    attempt: int


class RunSummary(BaseModel):
    """A run as listed: no trigger payload and no steps, which can be large."""

    id: uuid.UUID
    workflow_id: uuid.UUID
    workflow_version: int
    # Plain str: a status written by a newer worker must not turn reads into 500s.
    status: str
    attempt: int
    error: str | None
    retry_of: uuid.UUID | None
    accepted_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None
    # A parked run (status `waiting`) resumes then, or earlier on its callback.
    resume_at: datetime | None = None
    # Why a `queued` or `waiting` run does not run (shared/flow.py WAITING_REASONS), with
    # details such as {"ahead": 12}, {"resume_at": ...}, {"key": "...", "limit": 1}.
    waiting_reason: str | None = None
    waiting_detail: dict[str, Any] | None = None


class RunOut(RunSummary):
    trigger: dict[str, Any]
    steps: list[StepOut]


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None


class RunAccepted(BaseModel):
    run_id: uuid.UUID
