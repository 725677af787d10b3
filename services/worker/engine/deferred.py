"""An effectful step's record left to the run's final write, with a deadline.

When only inline steps without effects follow an effectful step (a call, then a `transform` of
its answer), a checkpoint of its own would cost a statement and a connection checkout per run
for a record that the final write, microseconds later, makes anyway. Temporal's local
activities make the same trade. The deadline keeps the promise close to a checkpoint's: if the
run has not ended `DEFERRED_RECORD_MAX_S` after the step, the record is written then as a
checkpoint while the later steps go on (a slow template after a call does not leave the call
unrecorded for long), and the final write waits for that statement before it is sent.

What this does not guarantee: a worker that dies within that window repeats the call on
redelivery, as one that dies before a checkpoint's statement commits does. The deadline fires
when the loop is free, so a step holding it adds at most one fair-CPU slice (fairness.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from services.worker.engine.steps import StepRecord

# How long the record of an effectful step may wait for the run's final write.
DEFERRED_RECORD_MAX_S = 0.05


class DeferredRecord:
    """The deadline of one deferred record, and the checkpoint it started, if it passed."""

    def __init__(
        self,
        checkpoint: Callable[[Sequence[StepRecord]], Coroutine[Any, Any, bool]],
        pending: list[StepRecord],
        max_s: float = DEFERRED_RECORD_MAX_S,
    ) -> None:
        self._checkpoint = checkpoint
        # The runner's own list: at the deadline it holds the steps finished since.
        self._pending = pending
        self._write: asyncio.Task[bool] | None = None
        self._timer = asyncio.get_running_loop().call_later(max_s, self._deadline)

    def _deadline(self) -> None:
        steps = list(self._pending)
        self._write = asyncio.get_running_loop().create_task(self._checkpoint(steps))

    async def settle(self) -> None:
        """Cancel the deadline, and wait for the checkpoint it started (its errors surface
        here), so the final write never shares the delivery's connection with it."""
        self._timer.cancel()
        if self._write is not None:
            # A run found not ours is left to the final write, which applies it the same way.
            await self._write
