"""The worker process's event loop, on a thread of its own, and the watchdog that watches it.

Every run of the process executes on this one loop (up to `--concurrency` at once), sharing
its database pool, HTTP client and node registry. RQ's dequeue and bookkeeping stay on other
threads with RQ's synchronous client, so a blocking Redis call never stalls a run, and a run
never stalls the dequeue.

A coroutine that never yields (a plugin's CPU-bound code run inline, a pathological template)
would stall every run on the loop, and no asyncio timeout can interrupt it. The loop therefore
ticks a clock every `TICK_S`; the watchdog reads it from another thread, so the process's
heartbeat goes stale (and /readyz says so) while the loop is stuck, and the stall is logged
with the loop thread's stack, naming the node that held it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from services.worker import metrics

log = logging.getLogger(__name__)

T = TypeVar("T")

TICK_S = 0.25


class EngineLoop:
    """An asyncio loop running forever on a daemon thread, with a liveness clock."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._last_tick = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="engine-loop", daemon=True)
        # What the loop is running inline right now, for the stall report (set by the runner
        # around synchronous node code; a plain attribute, read racily on purpose).
        self.inline_activity: str | None = None

    def start(self) -> None:
        """Start the loop thread; returns once the loop runs."""
        started = threading.Event()
        self.loop.call_soon_threadsafe(started.set)
        self._thread.start()
        started.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._tick)
        self.loop.run_forever()

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self.loop.call_later(TICK_S, self._tick)

    def stalled_for(self) -> float:
        """Seconds since the loop last came round (about 0 while it is healthy)."""
        return max(0.0, time.monotonic() - self._last_tick - TICK_S)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        """Schedule `coro` on the loop from any other thread."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop and wait for its result (from another thread)."""
        return self.submit(coro).result(timeout)

    def stack(self) -> str:
        """The loop thread's current stack, for a stall report."""
        frame = sys._current_frames().get(self._thread.ident or -1)
        return "".join(traceback.format_stack(frame)) if frame is not None else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop after the work it has already been given, and join its thread."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


class LoopWatchdog:
    """Notices and reports a stalled engine loop (called periodically from another thread)."""

    def __init__(self, engine_loop: EngineLoop, stall_after_s: float) -> None:
        self.engine_loop = engine_loop
        self.stall_after_s = stall_after_s
        self._reported = False

    def healthy(self) -> bool:
        """False while the loop has been stuck for longer than `stall_after_s`; reports once."""
        stalled = self.engine_loop.stalled_for()
        if stalled < self.stall_after_s:
            if self._reported:
                log.warning("engine loop came back after a stall")
            self._reported = False
            return True
        if not self._reported:
            self._reported = True
            metrics.LOOP_STALLS.inc()
            log.error(
                "engine loop stalled for %.1fs (every run of this process waits) while %s:\n%s",
                stalled,
                self.engine_loop.inline_activity or "running engine code",
                self.engine_loop.stack(),
            )
        return False
