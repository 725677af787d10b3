"""The queue consumer: one asyncio task per worker process feeding runs to the engine.

Each tick it settles the deliveries that ended since the last one (one pipeline), then takes
as many ready jobs as it has free slots (one atomic script: `rqlayout.RqLayout.take`), and
starts each as a task on this same loop (`RunEngine.execute`). A job is taken off the queue
only when this process can start it, so the queue length stays an honest backlog for KEDA.

While idle it blocks on the first queue with a BLMOVE that moves the list's tail onto itself:
it returns as soon as a job arrives without taking it, so the job is still taken by the atomic
script (never held only in memory). Every `job_heartbeat_interval` the deliveries in flight
are renewed in one round trip; every `scheduler_interval` abandoned jobs of dead workers are
re-queued and due scheduled jobs (parked runs' continuations) moved onto their queue.

Stopping: `stop(grace_s)` takes no new job and waits for the runs in flight up to the grace
period; runs still going then are cancelled and their jobs put back at the front of the queue
without spending a retry (the run record resumes them from their checkpoints elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.worker import metrics
from services.worker.rqlayout import Delivery, RqLayout, Settlement
from shared.queue import RQ_QUEUE_PREFIX, RunJob, decode_job_data

log = logging.getLogger(__name__)

_TOUCH_EVERY_S = 0.5
_MAX_BACKOFF_S = 5.0
_CUT = "cancelled at shutdown"

# Runs one delivery: (payload, job timeout in seconds) -> what happened.
Execute = Callable[[RunJob, float], Coroutine[Any, Any, str]]
# The queues to take from this tick, highest priority first.
QueueNames = Callable[[], Sequence[str]]


class HeartbeatFile:
    """A file whose modification time says when this process last proved it is working.

    A file, not a metric, so the supervisor can read the age of a worker that is stuck or
    dead, which could no longer report anything itself.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._last = 0.0

    def beat(self) -> None:
        """Record "alive and talking to Redis now" (at most twice a second, one syscall)."""
        current = time.monotonic()
        if current - self._last < _TOUCH_EVERY_S:
            return
        self._last = current
        self.path.touch()


class Consumer:
    """Takes run jobs from RQ queues and runs up to `concurrency` of them at once."""

    def __init__(
        self,
        layout: RqLayout,
        blocking: aioredis.Redis,
        execute: Execute,
        *,
        queues: QueueNames,
        concurrency: int,
        default_timeout_s: float,
        idle_block_s: float,
        renew_every_s: float,
        recover_every_s: float,
        heartbeat: HeartbeatFile | None = None,
        slot_label: str = "0",
        polled_key: str | None = None,
    ) -> None:
        self.layout = layout
        # Its own connection: a blocked BLMOVE must not hold one the runs need.
        self.blocking = blocking
        self.execute = execute
        self.queues = queues
        # This tick's queues, highest priority first: `queues` is asked once per take.
        self._queues_now: list[str] = []
        # "A worker asked these queues lately" (shared.flow.polled_key), written on the next
        # renewal's round trip, so runs waiting with no worker to take them can say so.
        self.polled_key = polled_key
        self._asked = False
        # Takes that found jobs: what a priority rotation counts (process.py).
        self.takes = 0
        self.concurrency = concurrency
        self.default_timeout_s = default_timeout_s
        self.idle_block_s = idle_block_s
        self.renew_every_s = renew_every_s
        self.recover_every_s = recover_every_s
        self.heartbeat = heartbeat
        self.running: dict[asyncio.Task[str], Delivery] = {}
        self.ended: list[Settlement] = []
        self._started_at: dict[asyncio.Task[str], float] = {}
        self._wake = asyncio.Event()
        # The blocking pop of each queue being watched (the priority queues), by queue name.
        self._waiters: dict[str, asyncio.Future[Any]] = {}
        self._stopping = False
        self._deadline: float | None = None
        self._in_flight_gauge = metrics.RUNS_IN_FLIGHT.labels(slot_label)
        self._free_gauge = metrics.FREE_SLOTS.labels(slot_label)
        self._free_gauge.set(concurrency)

    @property
    def in_flight(self) -> int:
        """Deliveries started and not yet settled in Redis."""
        return len(self.running) + len(self.ended)

    def stop(self, grace_s: float) -> None:
        """Take no new job; cut the runs still going after `grace_s` (a shorter one wins)."""
        deadline = time.monotonic() + max(0.0, grace_s)
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
        if not self._stopping:
            self._stopping = True
            log.info(
                "stopping: %d runs in flight finish within %.0fs, no new ones start",
                len(self.running),
                grace_s,
            )
        self._wake.set()

    async def run(self) -> None:
        """Consume until stopped and drained; unregisters the worker on the way out."""
        await self._register()
        next_renewal = next_recovery = time.monotonic()
        backoff = 0.5
        try:
            while not (self._stopping and not self.running and not self.ended):
                now = time.monotonic()
                if self._stopping and self._deadline is not None and now >= self._deadline:
                    await self._cut_short()
                try:
                    await self._settle()
                    if now >= next_renewal:
                        next_renewal = now + self.renew_every_s
                        polled = self.polled_key if self._asked else None
                        self._asked = False
                        await self.layout.renew(list(self.running.values()), polled)
                        self._beat()
                    if now >= next_recovery and not self._stopping:
                        next_recovery = now + self.recover_every_s
                        await self._recover()
                    taken = await self._take()
                    backoff = 0.5
                except (RedisError, OSError) as exc:
                    log.warning("Redis unavailable to the consumer (%s); retrying", exc)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                    continue
                if taken:
                    # More may be waiting: come straight round (yielding to the new runs).
                    await asyncio.sleep(0)
                    continue
                try:
                    await self._idle(next_renewal)
                except (RedisError, OSError) as exc:
                    # The blocking pop failed: Redis went away, or the loop was held (a node
                    # hogging it) past the pop's socket timeout. The next round retries.
                    log.warning("waiting on the queue failed (%s); retrying", exc)
                    await self._pause(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
        finally:
            if self._waiters:
                # They end by their own short timeout; cancelling would cut a connection
                # mid-reply.
                with contextlib.suppress(Exception):
                    await asyncio.wait(self._waiters.values(), timeout=self.idle_block_s + 1)
                for waiter in self._waiters.values():
                    if waiter.done() and not waiter.cancelled():
                        waiter.exception()  # a pop that failed on the way out is of no interest
                    else:
                        waiter.cancel()
                self._waiters.clear()
            with contextlib.suppress(RedisError, OSError):
                await self.layout.unregister()

    # -- one tick -----------------------------------------------------------------------------

    async def _register(self) -> None:
        backoff = 0.5
        while True:
            try:
                self._queues_now = list(self.queues())
                await self.layout.register(self._queues_now)
                self._beat()
                return
            except (RedisError, OSError) as exc:
                if self._stopping:
                    raise
                log.warning("cannot register with Redis (%s); retrying", exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def _take(self) -> bool:
        free = self.concurrency - len(self.running)
        if self._stopping or free <= 0:
            return False
        queues = self._queues_now = list(self.queues())
        self._asked = True
        await self.layout.register_queues(queues)
        deliveries = await self.layout.take(queues, free)
        if deliveries:
            self.takes += 1
        self._beat()
        for delivery in deliveries:
            self._start(delivery)
        return bool(deliveries)

    def _start(self, delivery: Delivery) -> None:
        job = decode_job_data(delivery.data)
        if job is None:
            self.ended.append(Settlement(delivery, f"job {delivery.job_id} is not a run job", 0))
            return
        timeout = delivery.timeout_s or self.default_timeout_s
        task = asyncio.get_running_loop().create_task(self.execute(job, timeout))
        self.running[task] = delivery
        self._started_at[task] = time.monotonic()
        task.add_done_callback(self._on_done)
        self._count()

    def _on_done(self, task: asyncio.Task[str]) -> None:
        delivery = self.running.pop(task)
        started = self._started_at.pop(task)
        error: str | None = None
        if task.cancelled():
            error = _CUT
        elif (exc := task.exception()) is not None:
            error = f"{type(exc).__name__}: {exc}"
            log.error(
                "run job failed; it is re-queued while it has retries left: %s",
                error,
                extra={"run_id": delivery.job_id},
            )
        self.ended.append(Settlement(delivery, error, time.monotonic() - started))
        self._count()
        self._wake.set()

    async def _settle(self) -> None:
        if not self.ended:
            return
        batch, self.ended = self.ended, []
        try:
            outcomes = await self.layout.settle(batch)
        except BaseException:
            self.ended[:0] = batch
            raise
        for item, outcome in zip(batch, outcomes, strict=True):
            if outcome == "stale":
                log.warning(
                    "job was recovered as abandoned while it ran; its next delivery decides",
                    extra={"run_id": item.delivery.job_id},
                )
        self._count()

    async def _recover(self) -> None:
        recovered = await self.layout.recover(self._queues_now)
        for job_id, outcome in recovered:
            log.warning(
                "job of a dead worker %s", outcome, extra={"run_id": job_id, "outcome": outcome}
            )

    async def _idle(self, next_renewal: float) -> None:
        """Wait for a job, a run's end, a stop, or the next renewal, whichever comes first."""
        wait = max(0.0, min(self.idle_block_s, next_renewal - time.monotonic()))
        if self._deadline is not None:
            wait = min(wait, max(0.0, self._deadline - time.monotonic()))
        self._wake.clear()
        if self.ended or wait <= 0:
            return
        if self._stopping or len(self.running) >= self.concurrency:
            # No slot to fill: only a run ending (or the clock) changes anything.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            return
        await self._block_on_queue(wait)

    async def _block_on_queue(self, wait: float) -> None:
        queues = self._queues_now
        if not queues:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            return
        # BLMOVE watches one list: a pop per queue, so a job on any priority's queue wakes us
        # at once (watching only the first and polling the others every 200 ms made an idle
        # worker take ~100 ms on average to see a normal-priority job).
        seconds = max(0.001, round(wait, 3))  # whole ms: Redis rounds, and 0 blocks forever
        for name in queues:
            if name not in self._waiters:
                key = RQ_QUEUE_PREFIX + name
                self._waiters[name] = asyncio.ensure_future(
                    self.blocking.blmove(key, key, seconds, "RIGHT", "RIGHT")  # type: ignore[arg-type]
                )
        # One pop per queue at a time: a run ending wakes us while they are still blocked, and
        # the next idle wait picks them up again.
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait(
                {*self._waiters.values(), woken}, timeout=wait, return_when="FIRST_COMPLETED"
            )
        finally:
            woken.cancel()
        for name, waiter in list(self._waiters.items()):
            if waiter.done():
                del self._waiters[name]
                error = waiter.exception()
                if error is not None:
                    raise error

    async def _cut_short(self) -> None:
        """The grace period is over: cancel what still runs; its jobs go back to the queue."""
        self._deadline = None
        if not self.running:
            return
        log.warning("grace period over: %d runs cut short and re-queued", len(self.running))
        tasks = list(self.running)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=5)
        cut = [item for item in self.ended if item.error == _CUT]
        self.ended = [item for item in self.ended if item.error != _CUT]
        if cut:
            with contextlib.suppress(RedisError, OSError):
                await self.layout.release([item.delivery for item in cut])

    async def _pause(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.beat()

    def _count(self) -> None:
        count = len(self.running)
        self._in_flight_gauge.set(count)
        self._free_gauge.set(max(0, self.concurrency - count))
