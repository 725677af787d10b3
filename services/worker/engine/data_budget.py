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

The runs of a process that finish in the same turn of the event loop are charged by one script
call, in the order they finished (a run's bytes decide against what the ones before it left):
a round trip per run was the largest cost the budget added to a plain run.
"""

from __future__ import annotations

import asyncio
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

# KEYS: a day's counter per run (a key may repeat). ARGV: the budget, the TTL, then per run its
# bytes and its markers' bytes. Charges each run's bytes when they fit, else its markers;
# returns 1 (fits) or 0 per run, in order.
_CHARGE = """
local budget, fitted = tonumber(ARGV[1]), {}
for i, key in ipairs(KEYS) do
  local bytes, markers = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local used = tonumber(redis.call('GET', key) or '0')
  local fits = used + tonumber(bytes) <= budget
  redis.call('INCRBY', key, fits and bytes or markers)
  redis.call('EXPIRE', key, ARGV[2])
  fitted[i] = fits and 1 or 0
end
return fitted
"""


def _size(fragment: orjson.Fragment | None) -> int:
    return 0 if fragment is None else len(orjson.dumps(fragment))


def _marker(size: int) -> orjson.Fragment:
    return orjson.Fragment(
        orjson.dumps({"truncated": True, "reason": _MARKER_REASON, "size": size})
    )


# A marker's size: {"truncated":true,"reason":"run_data_budget","size":<up to 20 digits>}.
_MARKER_BYTES = len(orjson.dumps(_marker(10**19)))
_MARKER_BASE_BYTES = len(orjson.dumps(_marker(0))) - 1


def _shrunk(payload: orjson.Fragment | None, size: int) -> orjson.Fragment | None:
    """The payload as recorded over budget: itself when no bigger than a marker."""
    return payload if payload is None or size <= _MARKER_BYTES else _marker(size)


def _shrunk_size(size: int) -> int:
    """What `_shrunk` of a payload of `size` bytes weighs, without building the marker."""
    return size if size <= _MARKER_BYTES else _MARKER_BASE_BYTES + len(str(size))


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
        # Charges waiting for this turn of the loop to end: (key, bytes, markers' bytes, answer).
        self._pending: list[tuple[str, int, int, asyncio.Future[bool]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def apply(self, workflow_id: str, steps: Sequence[StepRecord]) -> None:
        """Charge the steps' inputs and outputs; replace them by markers when over budget."""
        sizes = [(_size(step.input), _size(step.output)) for step in steps]
        total = sum(a + b for a, b in sizes)
        if total == 0:
            return
        # Over budget, a payload is replaced by its marker unless it is no bigger than one.
        marker_bytes = sum(_shrunk_size(a) + _shrunk_size(b) for a, b in sizes)
        key = f"{KEY_PREFIX}{workflow_id}:{self._now().strftime('%Y%m%d')}"
        if await self._fits(key, total, marker_bytes):
            return
        for step, (a, b) in zip(steps, sizes, strict=True):
            new_input, new_output = _shrunk(step.input, a), _shrunk(step.output, b)
            truncated = (new_input is not step.input) + (new_output is not step.output)
            if truncated:
                step.input, step.output = new_input, new_output
                STEP_DATA_TRUNCATED.inc(truncated)

    async def _fits(self, key: str, total: int, marker_bytes: int) -> bool:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        if not self._pending:
            # Sent once the runs that are ready in this turn of the loop have joined.
            loop.call_soon(self._send_pending)
        self._pending.append((key, total, marker_bytes, answer))
        return await answer

    def _send_pending(self) -> None:
        batch, self._pending = self._pending, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[tuple[str, int, int, asyncio.Future[bool]]]) -> None:
        args: list[int] = [self.budget_bytes, _KEY_TTL_S]
        for _key, total, markers, _answer in batch:
            args += (total, markers)
        try:
            fitted = await self._charge(keys=[key for key, *_ in batch], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning(
                    "run-data budget unavailable; recording whole: %s: %s",
                    type(exc).__name__,
                    exc,
                )
            fitted = [1] * len(batch)
        except BaseException:
            # Cancelled (shutdown) or a bug: the runs waiting are recorded whole.
            for *_, answer in batch:
                if not answer.done():
                    answer.set_result(True)
            raise
        for (*_, answer), fits in zip(batch, fitted, strict=True):
            if not answer.done():
                answer.set_result(bool(fits))
