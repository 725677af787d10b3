"""Schedule triggers: `{"type": "schedule", "cron": "*/5 * * * *", "timezone": "..."}` or
`{"type": "schedule", "every": "30s"}` — when is the next tick?

`every` ticks are aligned to the Unix epoch (every 30 s ticks at :00 and :30), so a tick's time
is the same whichever replica computes it and however often the workflow is saved. Cron
expressions are evaluated in the trigger's time zone (croniter), so "09:00 Europe/Berlin"
follows daylight saving time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

MIN_EVERY = timedelta(seconds=1)
MAX_EVERY = timedelta(days=366)
_EVERY = re.compile(r"^\s*(\d{1,9})\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> timedelta:
    """`"30s"`, `"5m"`, `"2h"`, `"1d"` as a timedelta; raises ValueError outside 1s to 366d."""
    match = _EVERY.match(text)
    if match is None:
        raise ValueError("'every' must be a number and a unit: s, m, h or d (e.g. '30s')")
    period = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not MIN_EVERY <= period <= MAX_EVERY:
        raise ValueError("'every' must be between 1s and 366d")
    return period


# A valid expression fires at least once in any leap cycle; searching further only finds
# dates that cannot exist (`0 0 31 2 *`, February 31st), which croniter would hunt for decades.
NEVER_FIRES_HORIZON_YEARS = 8


def check_cron(expression: str, timezone: str = "UTC") -> None:
    """Raise ValueError unless `expression` is a 5-field cron expression that ever fires."""
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise ValueError("'cron' must be a valid 5-field cron expression (e.g. '*/5 * * * *')")
    try:
        croniter(
            expression,
            datetime.now(UTC).astimezone(zone(timezone)),
            max_years_between_matches=NEVER_FIRES_HORIZON_YEARS,
        ).get_next(datetime)
    except (ValueError, KeyError, OverflowError):
        # croniter's "no match" (CroniterBadDateError) is a ValueError; day/month combinations
        # it cannot place raise the others.
        raise ValueError(
            f"'cron' {expression!r} never fires (no such date, e.g. February 31st)"
        ) from None


def runs_per_minute(trigger: Mapping[str, Any]) -> float:
    """The most runs per minute a (validated) schedule trigger can start: its peak rate.

    A 5-field cron fires at most once a minute, so it counts as 1 whatever its fields say.
    """
    every = trigger.get("every")
    if every:
        return 60.0 / parse_every(every).total_seconds()
    return 1.0


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`; raises ValueError when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (an IANA name such as 'Europe/Berlin')"
        ) from None


def is_schedule(trigger: Mapping[str, Any] | None) -> bool:
    """Whether a stored trigger is a schedule."""
    return trigger is not None and trigger.get("type") == "schedule"


def next_tick(trigger: Mapping[str, Any], after: datetime) -> datetime:
    """The first tick of a (validated) schedule trigger strictly after `after`, in UTC."""
    every = trigger.get("every")
    if every:
        period = parse_every(every).total_seconds()
        elapsed = after.timestamp()
        ticks = int(elapsed // period) + 1
        return datetime.fromtimestamp(ticks * period, UTC)
    tz = zone(trigger.get("timezone") or "UTC")
    following: datetime = croniter(trigger["cron"], after.astimezone(tz)).get_next(datetime)
    return following.astimezone(UTC)
