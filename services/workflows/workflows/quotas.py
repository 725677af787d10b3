"""Schedule quotas per user, checked when a workflow is saved or activated.

Without them one user can save any number of `every: 1s` workflows and the scheduler starts
their runs forever. Three bounds (settings, docs/schedules.md): the shortest `every`, the number
of active schedules, and the scheduled runs per minute those schedules may start together (each
counted at its peak rate: `every: P` starts 60/P a minute, a cron at most 1). A save beyond any
of them is a 422 naming the quota, so nothing is accepted that the user did not get.

Two saves of one user at once must not both pass on the same count: the check takes a
transaction-scoped advisory lock on the owner, held until the save commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared import schedules
from shared.settings import Settings

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended('schedule-quota:' || :owner, 0))")
_OTHER_ACTIVE_SCHEDULES = text(
    """
    SELECT trigger FROM workflows
    WHERE owner_id = :owner AND active AND trigger->>'type' = 'schedule' AND id <> :workflow
    """
)


@dataclass(frozen=True)
class ScheduleQuotas:
    """The bounds of one deployment (from the settings)."""

    min_interval_s: float
    max_active: int
    max_runs_per_minute: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ScheduleQuotas:
        return cls(
            min_interval_s=settings.schedule_min_interval_seconds,
            max_active=settings.schedule_max_active_per_user,
            max_runs_per_minute=settings.schedule_max_runs_per_minute_per_user,
        )


class QuotaExceeded(Exception):
    """A save that would break a schedule quota (the service answers it as a 422)."""

    def __init__(self, field: str, quota: str, message: str) -> None:
        super().__init__(message)
        self.detail = [
            {"loc": ["body", "trigger", field], "msg": message, "type": f"quota.{quota}"}
        ]


async def check(
    session: AsyncSession,
    quotas: ScheduleQuotas,
    owner_id: uuid.UUID,
    workflow_id: uuid.UUID,
    trigger: dict[str, Any],
    active: bool,
) -> None:
    """Raise QuotaExceeded if saving this workflow (as `trigger`, `active`) breaks a quota."""
    if not active or not schedules.is_schedule(trigger):
        return
    every = trigger.get("every")
    field = "every" if every else "cron"
    if every and schedules.parse_every(every).total_seconds() < quotas.min_interval_s:
        raise QuotaExceeded(
            field,
            "min_interval",
            f"schedule quota: 'every' must be at least {quotas.min_interval_s:g}s "
            "(AUTOMATEOS_SCHEDULE_MIN_INTERVAL_SECONDS)",
        )
    await session.execute(_LOCK, {"owner": str(owner_id)})
    others = (
        await session.execute(_OTHER_ACTIVE_SCHEDULES, {"owner": owner_id, "workflow": workflow_id})
    ).scalars()
    rates = [_rate(stored) for stored in others]
    if len(rates) + 1 > quotas.max_active:
        raise QuotaExceeded(
            field,
            "max_active",
            f"schedule quota: at most {quotas.max_active} active schedules per user "
            "(AUTOMATEOS_SCHEDULE_MAX_ACTIVE_PER_USER); deactivate one first",
        )
    total = sum(rates) + schedules.runs_per_minute(trigger)
    if total > quotas.max_runs_per_minute + 1e-9:
        raise QuotaExceeded(
            field,
            "runs_per_minute",
            f"schedule quota: your active schedules would start {total:g} runs a minute, "
            f"at most {quotas.max_runs_per_minute:g} are allowed per user "
            "(AUTOMATEOS_SCHEDULE_MAX_RUNS_PER_MINUTE_PER_USER)",
        )


def _rate(trigger: dict[str, Any]) -> float:
    try:
        return schedules.runs_per_minute(trigger)
    except ValueError:
        return 0.0  # a stored trigger that no longer parses never fires (the scheduler stops it)
