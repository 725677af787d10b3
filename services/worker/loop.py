"""The worker process's event loop clock, and the watchdog that reports a stalled loop.

Every run of the process executes on the main thread's event loop (up to `--concurrency` at
once), beside the queue consumer, sharing its database pool, HTTP client and node registry.

A coroutine that never yields (a plugin's CPU-bound code run inline, a pathological template)
would stall every run on the loop, and no asyncio timeout can interrupt it. The loop therefore
ticks a clock every `TICK_S`. The heartbeat file is touched from the loop itself, so it goes
stale (and /readyz says so) while the loop is stuck; the watchdog, the one other thread (it
only reads the clock), logs the stall with the loop thread's stack, naming the node that held
it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback

from services.worker import metrics

log = logging.getLogger(__name__)

TICK_S = 0.25


class EngineLoop:
    """The running event loop of this thread, with a liveness clock."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._thread_id = threading.get_ident()
        self._last_tick = time.monotonic()
        self._handle: asyncio.TimerHandle | None = None
        # What the loop is running inline right now, for the stall report (set by the runner
        # around synchronous node code; a plain attribute, read racily on purpose).
        self.inline_activity: str | None = None

    def start(self) -> None:
        """Start ticking (call on the loop's own thread)."""
        self._tick()

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        self._handle = self.loop.call_later(TICK_S, self._tick)

    def stalled_for(self) -> float:
        """Seconds since the loop last came round (about 0 while it is healthy)."""
        return max(0.0, time.monotonic() - self._last_tick - TICK_S)

    def stack(self) -> str:
        """The loop thread's current stack, for a stall report."""
        frame = sys._current_frames().get(self._thread_id)
        return "".join(traceback.format_stack(frame)) if frame is not None else ""

    def stop(self) -> None:
        """Stop ticking."""
        if self._handle is not None:
            self._handle.cancel()


class LoopWatchdog:
    """Notices and reports a stalled engine loop, from a daemon thread of its own."""

    def __init__(self, engine_loop: EngineLoop, stall_after_s: float) -> None:
        self.engine_loop = engine_loop
        self.stall_after_s = stall_after_s
        self._reported = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="loop-watchdog", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching."""
        self._stop.set()

    def _watch(self) -> None:
        interval = min(0.5, self.stall_after_s / 2)
        while not self._stop.wait(interval):
            self.healthy()

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
