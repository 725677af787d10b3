"""The run-data budget: how many bytes of step inputs and outputs one workflow may record a day.

Without it, one workflow that moves a megabyte per run fills PostgreSQL for every user of the
instance. Each finished run charges the bytes of its steps' recorded inputs and outputs to its
workflow's counter for the UTC day (`AUTOMATEOS_RUN_DATA_BUDGET_BYTES_PER_DAY`, see
docs/flow-control.md).
A run whose data no longer fits is recorded with every input and output replaced by a small
marker, `{"truncated": true, "reason": "run_data_budget", "size": <bytes>}`, and
`automateos_step_data_truncated_total` counts those steps. The run itself (status, error,
timings, step statuses and errors) is recorded as always, and other workflows are unaffected:
each has its own counter. So a workflow's recorded data grows by at most its budget a day,
plus a marker per step beyond it.

The counter is one Redis key per workflow and day, checked and charged by one script, so the
worker processes of the deployment share it. Only the bytes actually recorded are charged.
Redis failing here must not fail the run: the run is recorded whole, and a warning logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from services.worker.engine.steps import StepRecord

log = logging.getLogger(__name__)

STEP_DATA_TRUNCATED = Counter(
    "automateos_step_data_truncated_total",
    "Step inputs/outputs recorded as a marker because their workflow's daily run-data budget "
    "was spent.",
)

KEY_PREFIX = "automateos:run-data:"
# A day's counter outlives its day a little, for runs that finish just after midnight.
_KEY_TTL_S = 2 * 24 * 3600
_MARKER_REASON = "run_data_budget"

# KEYS[1] the day's counter. ARGV: the run's bytes, the budget, the markers' bytes, the TTL.
# Charges the run's bytes and returns 1 when they fit; else charges the markers, returns 0.
_CHARGE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local fits = used + tonumber(ARGV[1]) <= tonumber(ARGV[2])
redis.call('INCRBY', KEYS[1], fits and ARGV[1] or ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
if fits then return 1 end
return 0
"""


def _size(fragment: orjson.Fragment | None) -> int:
    return 0 if fragment is None else len(orjson.dumps(fragment))


def _marker(size: int) -> orjson.Fragment:
    return orjson.Fragment(
        orjson.dumps({"truncated": True, "reason": _MARKER_REASON, "size": size})
    )


# A marker's size: {"truncated":true,"reason":"run_data_budget","size":<up to 20 digits>}.
_MARKER_BYTES = len(orjson.dumps(_marker(10**19)))


def _shrunk(payload: orjson.Fragment | None, size: int) -> orjson.Fragment | None:
    """The payload as recorded over budget: itself when no bigger than a marker."""
    return payload if payload is None or size <= _MARKER_BYTES else _marker(size)


class RunDataBudget:
    """Charges finished runs' recorded step data to their workflow's daily budget."""

    def __init__(
        self,
        client: aioredis.Redis,
        budget_bytes: int,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._charge = client.register_script(_CHARGE)
        self.budget_bytes = budget_bytes
        self._now = now
        self._warned_at = 0.0

    async def apply(self, workflow_id: str, steps: Sequence[StepRecord]) -> None:
        """Charge the steps' inputs and outputs; replace them by markers when over budget."""
        sizes = [(_size(step.input), _size(step.output)) for step in steps]
        total = sum(a + b for a, b in sizes)
        if total == 0:
            return
        # Over budget, a payload is replaced by its marker unless it is no bigger than one.
        markers = [
            (_shrunk(step.input, a), _shrunk(step.output, b))
            for step, (a, b) in zip(steps, sizes, strict=True)
        ]
        marker_bytes = sum(_size(i) + _size(o) for i, o in markers)
        key = f"{KEY_PREFIX}{workflow_id}:{self._now().strftime('%Y%m%d')}"
        try:
            fits = await self._charge(
                keys=[key], args=[total, self.budget_bytes, marker_bytes, _KEY_TTL_S]
            )
        except (RedisError, OSError, TimeoutError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning("run-data budget unavailable; recording whole: %r", exc)
            return
        if fits:
            return
        for step, (new_input, new_output) in zip(steps, markers, strict=True):
            truncated = (new_input is not step.input) + (new_output is not step.output)
            if truncated:
                step.input, step.output = new_input, new_output
                STEP_DATA_TRUNCATED.inc(truncated)
