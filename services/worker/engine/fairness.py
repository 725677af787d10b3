"""Fair CPU between the runs of one worker process: no run holds the event loop for long, and no
run spends more than its CPU budget on templates.

Every run of a process shares one event loop, and template rendering is synchronous Python. A
render therefore starts inline with a *slice* of the loop (`slice_s`, 20 ms by default): nearly
every render (field look-ups, a comparison, a small loop) ends far inside it and costs nothing
extra. A render that outruns its slice is stopped (`RenderSliceExceeded`) and started again in a
render process; rendering is pure, so the second start gives the same result. The run is then
marked heavy, and its later renders go straight to the process without spending another slice.

A process, not a thread: a thread rendering would hold the GIL the loop needs, and every other
run would wait for it at each of its I/O wake-ups. The render processes run at a lower CPU
priority (nice), so on a busy machine they take what the worker loops leave.

Every run has a CPU budget for one delivery (`budget_s`): template time, inline and in the
process, and the time of nodes that run inline on the loop count against it; past it the step
fails naming the limit.

What this does not guarantee: a plugin that runs inline (declared non-blocking) is not sliced:
one that hogs the loop is reported by the watchdog and charged to its run afterwards, not
stopped. The budget counts one delivery: a continuation or a redelivery starts a fresh one. A
render in the process may use up to the per-render limit (2 s, template_limits.py), and heavy
renders of different runs queue for the processes in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from services.worker import metrics
from shared.nodes import NodeError, render
from shared.nodes.templating import RenderSliceExceeded, render_measured

log = logging.getLogger(__name__)

# The render processes' niceness: below the worker loops, which serve every other run.
_RENDER_NICENESS = 10


class CpuBudgetExceeded(NodeError):
    """The run spent its CPU budget; the step that crossed it fails."""


@dataclass
class RunCpu:
    """What one delivery of a run has spent, and whether its renders skip the inline slice."""

    budget_s: float
    spent_s: float = 0.0
    heavy: bool = False

    def charge(self, seconds: float) -> None:
        """Add `seconds`; past the budget, fail the step that spent them."""
        self.spent_s += seconds
        self.check()

    def check(self) -> None:
        """Fail now if the budget is already spent (before starting more work)."""
        if self.spent_s > self.budget_s:
            metrics.RUN_CPU_BUDGET_EXCEEDED.inc()
            raise CpuBudgetExceeded(
                f"run exceeded its CPU budget of {self.budget_s:g} s "
                f"(spent {self.spent_s:.2f} s on templates and inline nodes; "
                "AUTOMATEOS_WORKER_RUN_CPU_BUDGET_SECONDS)"
            )


_current: ContextVar[RunCpu | None] = ContextVar("run_cpu", default=None)


@contextmanager
def run_cpu(budget_s: float) -> Iterator[RunCpu]:
    """Account the CPU of the run executing inside the block (tasks it starts share it)."""
    account = RunCpu(budget_s)
    token = _current.set(account)
    try:
        yield account
    finally:
        _current.reset(token)


def current_run_cpu() -> RunCpu | None:
    """The account of the run this task executes, if any."""
    return _current.get()


def _lower_priority() -> None:
    try:
        os.nice(_RENDER_NICENESS)
    except OSError:  # pragma: no cover - a sandbox may refuse; fairness is then the OS's
        log.warning("could not lower the render process's priority")


def _portable(context: Mapping[str, Any]) -> dict[str, Any]:
    # The context crosses a process boundary by pickling: lazy mappings (the run's secrets)
    # become plain dicts, which opens every secret the node references; the caller scrubs all of
    # them from what the step records, which is more than a lazy inline render would open.
    return {
        key: dict(value) if isinstance(value, Mapping) and not isinstance(value, dict) else value
        for key, value in context.items()
    }


class FairRenderer:
    """Renders templates for the runs of one process: inline within a slice, else off the loop."""

    def __init__(self, *, slice_s: float = 0.02, processes: int = 1) -> None:
        self.slice_s = slice_s
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: forking a process that runs an event loop and threads copies their locks.
            self._pool = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
            )
        return self._pool

    async def render(self, value: Any, context: Mapping[str, Any]) -> Any:
        """Render `value` against `context` (templating.render's contract), fairly."""
        account = _current.get()
        if account is None:
            return render(value, context)
        account.check()
        if not account.heavy:
            started = time.thread_time()
            try:
                result = render(value, context, slice_s=self.slice_s)
            except RenderSliceExceeded:
                account.heavy = True
                metrics.RENDERS_OFFLOADED.inc()
            else:
                account.charge(time.thread_time() - started)
                return result
            # The slice spent before the render moved counts too.
            account.charge(time.thread_time() - started)
        return await self._offload(value, context, account)

    async def _offload(self, value: Any, context: Mapping[str, Any], account: RunCpu) -> Any:
        loop = asyncio.get_running_loop()
        try:
            ok, result, seconds = await loop.run_in_executor(
                self._executor(), render_measured, value, _portable(context)
            )
        except BrokenProcessPool:
            # A render process died (killed, out of memory): the next render gets a new one.
            self._pool = None
            raise NodeError("the template render process died; the step can be retried") from None
        account.charge(seconds)
        if not ok:
            raise NodeError(result)
        return result

    def close(self) -> None:
        """Stop the render processes (worker shutdown); renders in progress are abandoned."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
