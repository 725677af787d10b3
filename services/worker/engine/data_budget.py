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

The counter is one Redis key per workflow and day, shared by every worker process of the
deployment. A process does not ask it for every run: it reserves a slice of the budget (up to
1/64 of it, at most 1 MiB) together with the bytes of the run that needed it, and spends the
slice on its next runs of that workflow locally. So a plain run costs no round trip, and the
counter never exceeds the budget except by markers. What this does not guarantee: a slice
reserved by one process cannot be spent by another, so a run may get markers while other
processes still hold up to a slice each; a stopping process gives its slices back, a killed one
cannot (they count as spent for the rest of the day).
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

# KEYS[1] the day's counter. ARGV: the bytes a run needs beyond what its process holds, the
# slice to reserve on top, the budget, the run's markers' bytes, the TTL. Reserves the need plus
# as much of the slice as fits and returns what it reserved; when the need does not fit,
# charges the markers instead and returns -1.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local need, budget = tonumber(ARGV[1]), tonumber(ARGV[3])
local granted = -1
if used + need <= budget then
  granted = math.min(need + tonumber(ARGV[2]), budget - used)
  redis.call('INCRBY', KEYS[1], granted)
else
  redis.call('INCRBY', KEYS[1], ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return granted
"""
_MAX_SLICE_BYTES = 1024 * 1024


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
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self.budget_bytes = budget_bytes
        self.slice_bytes = min(_MAX_SLICE_BYTES, budget_bytes // 64)
        self._now = now
        self._warned_at = 0.0
        # Reserved and not yet spent, by counter key; only the current day's keys are kept.
        self._held: dict[str, int] = {}
        self._day = ""

    async def apply(self, workflow_id: str, steps: Sequence[StepRecord]) -> None:
        """Charge the steps' inputs and outputs; replace them by markers when over budget."""
        sizes = [(_size(step.input), _size(step.output)) for step in steps]
        total = sum(a + b for a, b in sizes)
        if total == 0:
            return
        key = f"{KEY_PREFIX}{workflow_id}:{self._today()}"
        held = self._held.get(key, 0)
        if held >= total:
            self._held[key] = held - total
            return
        need = total - held
        # Over budget, a payload is replaced by its marker unless it is no bigger than one.
        marker_bytes = sum(_shrunk_size(a) + _shrunk_size(b) for a, b in sizes)
        # Set aside while the script runs, so a run finishing meanwhile cannot spend it too.
        self._held[key] = 0
        granted = await self._ask(key, need, marker_bytes)
        if granted is not None and granted >= 0:
            # The run is charged; what the grant holds beyond it is for the next runs.
            self._held[key] = self._held.get(key, 0) + granted - need
            return
        held += self._held.get(key, 0)
        if granted is None or held >= total:
            # Redis failed (recorded whole), or runs that finished meanwhile left enough: the
            # markers the script charged then over-count, which never lets the data pass it.
            self._held[key] = held - total if granted is not None else held
            return
        self._held[key] = held
        for step, (a, b) in zip(steps, sizes, strict=True):
            new_input, new_output = _shrunk(step.input, a), _shrunk(step.output, b)
            truncated = (new_input is not step.input) + (new_output is not step.output)
            if truncated:
                step.input, step.output = new_input, new_output
                STEP_DATA_TRUNCATED.inc(truncated)

    async def _ask(self, key: str, need: int, marker_bytes: int) -> int | None:
        """Bytes reserved (need included), -1 when the need does not fit, None without Redis."""
        args = [need, self.slice_bytes, self.budget_bytes, marker_bytes, _KEY_TTL_S]
        try:
            return int(await self._reserve(keys=[key], args=args))
        except (RedisError, OSError, TimeoutError) as exc:
            if time.monotonic() - self._warned_at > 60:
                self._warned_at = time.monotonic()
                log.warning(
                    "run-data budget unavailable; recording whole: %s: %s",
                    type(exc).__name__,
                    exc,
                )
            return None

    def _today(self) -> str:
        day = self._now().strftime("%Y%m%d")
        if day != self._day:
            # Yesterday's slices are of no use any more (its counter expires on its own).
            self._day, self._held = day, {}
        return day

    async def give_back(self) -> None:
        """Return the unspent slices (worker shutdown), so other processes can spend them."""
        held, self._held = {key: n for key, n in self._held.items() if n > 0}, {}
        if not held:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for key, unspent in held.items():
                    pipe.decrby(key, unspent)
                await pipe.execute()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not give back run-data budget: %s: %s", type(exc).__name__, exc)
