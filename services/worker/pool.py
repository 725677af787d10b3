"""The worker process pool: N fresh interpreters, restarted when they die, drained on a signal.

Worker processes run in their own session so a terminal's Ctrl-C reaches them once, through the
supervisor, not twice. A process that dies sooner than `_HEALTHY_AFTER_S` after starting is
crash-looping: it is restarted after a backoff doubling up to `_MAX_BACKOFF_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.multiprocess import mark_process_dead

from services.worker.collectors import ProcessView

log = logging.getLogger(__name__)

_POLL_S = 0.2
_HEALTHY_AFTER_S = 10.0
_MAX_BACKOFF_S = 30.0


def heartbeat_path(run_dir: Path, index: int) -> Path:
    """Where worker process `index` touches its heartbeat."""
    return run_dir / f"heartbeat-{index}"


@dataclass
class Slot:
    """One worker process position; its process is replaced when it dies."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff_s: float = 0.0
    start_after: float = 0.0


class ProcessPool:
    """Starts, watches, restarts and drains the worker processes."""

    def __init__(
        self,
        processes: int,
        *,
        metrics_dir: Path,
        run_dir: Path,
        process_args: list[str],
    ) -> None:
        self.slots = [Slot(index) for index in range(processes)]
        self.metrics_dir = metrics_dir
        self.run_dir = run_dir
        self.process_args = process_args
        self.draining = False
        self._wake = asyncio.Event()

    def signal(self, sig: signal.Signals) -> None:
        """Forward a stop signal to every process; the first one starts the drain."""
        if self.draining:
            log.warning("%s again: worker processes stop without finishing their runs", sig.name)
        else:
            log.info("%s: draining (runs in flight finish, no new ones start)", sig.name)
            self.draining = True
        for slot in self.slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(sig)
        self._wake.set()

    async def supervise(self) -> None:
        """Keep every slot's process running until a drain has stopped them all."""
        while True:
            current = time.monotonic()
            for slot in self.slots:
                if slot.proc is not None and slot.proc.poll() is not None:
                    self._reap(slot, current)
                if slot.proc is None and not self.draining and current >= slot.start_after:
                    self._spawn(slot)
            if self.draining and all(slot.proc is None for slot in self.slots):
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), _POLL_S)

    def _spawn(self, slot: Slot) -> None:
        heartbeat_path(self.run_dir, slot.index).unlink(missing_ok=True)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)}
        command = [sys.executable, "-m", "services.worker.process"]
        command += ["--index", str(slot.index), "--run-dir", str(self.run_dir)]
        command += self.process_args
        slot.proc = subprocess.Popen(command, env=env, start_new_session=True)  # noqa: S603
        slot.started_at = time.monotonic()
        log.info("started worker process %d (pid %d)", slot.index, slot.proc.pid)

    def _reap(self, slot: Slot, current: float) -> None:
        assert slot.proc is not None
        code, pid = slot.proc.returncode, slot.proc.pid
        slot.proc = None
        # Its live gauges no longer count; its counters stay in the merged totals.
        mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
        heartbeat_path(self.run_dir, slot.index).unlink(missing_ok=True)
        if self.draining:
            log.info("worker process %d (pid %d) stopped with %s", slot.index, pid, code)
            return
        lived = current - slot.started_at
        if lived >= _HEALTHY_AFTER_S:
            slot.backoff_s = 0.0
        else:
            slot.backoff_s = min(_MAX_BACKOFF_S, max(1.0, slot.backoff_s * 2))
        slot.start_after = current + slot.backoff_s
        slot.restarts += 1
        log.warning(
            "worker process %d (pid %d) exited with %s after %.1fs; restarting in %.1fs",
            slot.index,
            pid,
            code,
            lived,
            slot.backoff_s,
        )

    def heartbeat_age(self, slot: Slot) -> float | None:
        """Seconds since the slot's process last touched its heartbeat (None: never)."""
        try:
            return max(0.0, time.time() - heartbeat_path(self.run_dir, slot.index).stat().st_mtime)
        except FileNotFoundError:
            return None

    def views(self) -> list[ProcessView]:
        """What the metrics show per slot."""
        views = []
        for slot in self.slots:
            age = self.heartbeat_age(slot)
            if age is None and slot.proc is not None:
                # Not one heartbeat yet: the age grows from its start, so a worker that never
                # comes up shows on dashboards instead of being absent.
                age = time.monotonic() - slot.started_at
            pid = slot.proc.pid if slot.proc is not None else None
            views.append(ProcessView(slot.index, pid, age, slot.restarts))
        return views

    def process_states(self, max_heartbeat_age_s: float) -> dict[str, str]:
        """Readiness of each slot: "ok", or why not."""
        states: dict[str, str] = {}
        for slot in self.slots:
            age = self.heartbeat_age(slot)
            if slot.proc is None:
                state = "not running"
            elif age is None:
                state = "starting"
            elif age > max_heartbeat_age_s:
                state = f"no heartbeat for {age:.1f}s"
            else:
                state = "ok"
            states[f"worker-{slot.index}"] = state
        return states
