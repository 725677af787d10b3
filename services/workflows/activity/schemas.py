"""Response bodies of the activity endpoint (what the console's workflow list shows)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class LastRun(BaseModel):
    id: uuid.UUID
    status: str
    accepted_at: datetime


class WorkflowActivity(BaseModel):
    workflow_id: uuid.UUID
    last_run: LastRun | None
    # Runs accepted in the window, by status; statuses without runs are absent.
    runs_by_status: dict[str, int]


class ActivityPage(BaseModel):
    since: datetime
    items: list[WorkflowActivity]
