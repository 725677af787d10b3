"""`--since 1h` / `--since 2026-12-07T10:00Z`: a moment as the CLI's time filters take it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGO = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str, now: datetime | None = None) -> datetime:
    """`30s`, `15m`, `1h`, `2d`, `1w` ago, or an ISO 8601 time (no zone: UTC).

    ValueError for anything else.
    """
    text = text.strip()
    ago = _AGO.match(text)
    if ago:
        amount, unit = ago.groups()
        return (now or datetime.now(UTC)) - timedelta(**{_UNIT[unit]: int(amount)})
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (30s, 15m, 1h, 2d, 1w) nor an ISO 8601 time"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
