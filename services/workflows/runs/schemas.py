"""Response bodies of the runs API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]


class StepItemOut(BaseModel):
    """One item of a for-each step."""

    index: int
    status: str
    output: Any
    error: str | None
    started_at: datetime | None
    duration_ms: int | None


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
    # A for-each step's items that started, in item order; null for any other step.
    items: list[StepItemOut] | None = None
    # A `call_workflow` step: the child run it started.
    child_run_id: uuid.UUID | None = None


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
    # A child run: the run whose `call_workflow` step started it.
    parent_run_id: uuid.UUID | None = None
    # A replay: the run it replayed.
    replay_of: uuid.UUID | None = None
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


class ReplayIn(BaseModel):
    """`POST /runs/{id}/replay`: run again, reusing the recorded steps before `from_step`."""

    model_config = ConfigDict(extra="forbid")

    from_step: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    version: Literal["original", "current"] = "original"
