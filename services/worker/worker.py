"""The RQ worker class: up to `concurrency` runs at once in one process, RQ's registries kept true.

Stock `SimpleWorker` runs one job at a time in its own thread. Ours keeps RQ's work loop for
dequeueing, registration, maintenance and signals, and changes what "executing a job" means:

- The main thread waits for a free slot *before* it dequeues (backpressure: a job is taken off
  the queue only when this process can start it), does RQ's own preparation (execution record,
  started registry), and hands the run to the engine's event loop (`loop.EngineLoop`).
- A bookkeeping thread finishes each job with RQ's own success/failure handling when its run
  ends, and renews every in-flight job's started-registry entry in one pipeline every few
  seconds with a short TTL (stock `SimpleWorker` sets it once, to job timeout + 60 s, so the
  job of a dead worker would wait 16 minutes to be re-queued).
- The heartbeat file, which the supervisor's /readyz reads, is touched after successful Redis
  round trips, and only while the engine loop is not stalled (`loop.LoopWatchdog`).

What goes past RQ's public API (the dequeue loop, the batched renewal) lives here and in
`rqcompat.py`, whose behaviour tests/services/worker/test_rqcompat.py pins to the RQ release.
"""

from __future__ import annotations

import logging
import os
import queue as stdqueue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from redis.client import Pipeline
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from services.worker import metrics, rqcompat
from services.worker.config import WorkerSettings
from services.worker.loop import LoopWatchdog
from shared.flow import polled_key
from shared.queue import JOB_FUNCTION, RunJob

log = logging.getLogger(__name__)

_TOUCH_EVERY_S = 0.5
# RQ heartbeats the worker around every job; its key lives worker_ttl + 60 s, so at high job
# rates one heartbeat a second is plenty.
_HEARTBEAT_EVERY_S = 1.0
_SLOT_WAIT_S = 1.0

# Starts one run on the engine loop: (payload, job timeout in seconds) -> its future.
StartRun = Callable[[RunJob, float], "Future[str]"]


class ExpiringResultJob(Job):
    """A job whose "keep no result" (result_ttl 0) means "let it expire in a second".

    With result_ttl 0 RQ deletes the job on success, which costs seven extra round trips
    (a status lookup and two passes over the execution registry); an expiry rides in the
    success transaction for free. Nothing reads RQ's result: the run record is in PostgreSQL.
    """

    def get_result_ttl(self, default_ttl: int) -> int:
        """The job's result TTL, with 0 turned into 1 second."""
        ttl = super().get_result_ttl(default_ttl)
        return 1 if ttl == 0 else ttl


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


@dataclass
class _InFlight:
    job: Job
    queue: Queue
    execution: Execution
    future: Future[str] | None = None


class RunWorker(SimpleWorker):
    """An RQ worker running up to `concurrency` runs at once on one event loop."""

    # Reconnect to a Redis that came back within seconds instead of backing off to a minute.
    max_connection_wait_time = 5.0
    # RQ logs several INFO lines per job; at hundreds of jobs per second they drown the logs.
    log_result_lifespan = False

    def __init__(
        self,
        queues: list[str],
        *,
        heartbeat: HeartbeatFile,
        worker_settings: WorkerSettings,
        start_run: StartRun,
        watchdog: LoopWatchdog,
        concurrency: int,
        slot_label: str = "0",
        queue_order: Callable[[int], list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        # Read by RQ's constructor (socket timeout), so set before it runs.
        self._dequeue_timeout = worker_settings.dequeue_timeout_seconds
        self._job_ttl = worker_settings.job_heartbeat_ttl_seconds
        self._heartbeat_file = heartbeat
        self._start_run = start_run
        self._watchdog = watchdog
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._inflight: dict[str, _InFlight] = {}
        self._inflight_lock = threading.Lock()
        self._done: stdqueue.SimpleQueue[str] = stdqueue.SimpleQueue()
        self._parent_pid = os.getppid()
        self._orphaned = False
        self._last_heartbeat = 0.0
        self._in_flight_gauge = metrics.RUNS_IN_FLIGHT.labels(slot_label)
        self._free_gauge = metrics.FREE_SLOTS.labels(slot_label)
        self._free_gauge.set(concurrency)
        # Priority queues (services/worker/flow/priority.py): asked in this order per dequeue.
        self._queue_order = queue_order
        self._dequeues = 0
        self._polled_key = polled_key(queues[0])
        # A dequeue is under way / one happened since the last heartbeat (shared.flow.polled_key).
        self._asking = False
        self._asked = False
        super().__init__(
            queues,
            job_class=ExpiringResultJob,
            worker_ttl=worker_settings.worker_ttl_seconds,
            job_monitoring_interval=worker_settings.job_heartbeat_interval_seconds,
            maintenance_interval=worker_settings.maintenance_interval_seconds,
            log_job_description=False,
            **kwargs,
        )
        self._bookkeeper = threading.Thread(target=self._bookkeep, name="rq-bookkeeping")
        self._bookkeeper_stop = threading.Event()
        self._bookkeeper.daemon = True
        self._bookkeeper.start()

    # -- what RQ asks of a worker -------------------------------------------------------------

    @property
    def dequeue_timeout(self) -> int:
        """Seconds one blocking dequeue waits before the loop comes round again."""
        return self._dequeue_timeout

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """The started-registry TTL of a running job: short, because it is renewed."""
        return self._job_ttl

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat: one round trip instead of three, at most once a second.

        A successful one also touches the heartbeat file.
        """
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        current = time.monotonic()
        if timeout is None and current - self._last_heartbeat < _HEARTBEAT_EVERY_S:
            return
        with self.connection.pipeline() as own:
            super().heartbeat(timeout, own)
            if self._asking or self._asked:
                # Rides on the heartbeat's round trip: "a worker asked this queue lately".
                own.set(self._polled_key, repr(time.time()), ex=3600)
                self._asked = False
            own.execute()
        self._last_heartbeat = current
        self.beat()

    def beat(self) -> None:
        """Touch the heartbeat file (not while the loop is stalled); stop if orphaned."""
        if self._watchdog.healthy():
            self._heartbeat_file.beat()
        if not self._orphaned and os.getppid() != self._parent_pid:
            # Without a supervisor nobody serves our probes or forwards SIGTERM: drain and go.
            self._orphaned = True
            log.warning("supervisor gone; finishing the runs in flight and stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """Wait for a free slot, then dequeue; None once a stop was requested (or burst is dry).

        The slot taken here is given back when the run ends (or at once if it never starts).
        """
        while not self._slots.acquire(timeout=_SLOT_WAIT_S):
            self.heartbeat()
            if self._stop_requested:
                return None
        if self._queue_order is not None:
            self._order_queues()
        self._asking = self._asked = True
        try:
            result = rqcompat.dequeue(self, timeout, lambda: self._stop_requested)
        except BaseException:
            self._slots.release()
            raise
        finally:
            self._asking = False
        if result is None:
            self._slots.release()
        return result

    def _order_queues(self) -> None:
        assert self._queue_order is not None
        by_name = {queue.name: queue for queue in self.queues}
        self._dequeues += 1
        names = self._queue_order(self._dequeues)
        self._ordered_queues = [by_name[name] for name in names if name in by_name]

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Record the job as started as RQ does, then start its run on the loop; return at once."""
        try:
            execution = rqcompat.prepare(self, job, queue)
        except BaseException:
            self._slots.release()
            raise
        flight = _InFlight(job, queue, execution)
        with self._inflight_lock:
            self._inflight[execution.id] = flight
        self._count_in_flight()
        try:
            job.started_at = now()
            flight.future = self._start_run(_run_payload(job), float(job.timeout or 0))
        except BaseException as exc:
            # Nothing runs: RQ's failure handling re-queues it (or fails it) as for any job.
            failed: Future[str] = Future()
            failed.set_exception(exc)
            flight.future = failed
            self._on_run_done(execution.id, failed)
            if not isinstance(exc, Exception):
                raise
            return
        flight.future.add_done_callback(lambda done: self._on_run_done(execution.id, done))

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Warm shutdown: take no new job, let every run in flight finish.

        Never raises from the signal handler: the dequeue loop sees the flag within one
        dequeue timeout, so a job popped at the moment of the signal is never stranded.
        """
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        self._stop_requested = True

    def work(self, *args: Any, **kwargs: Any) -> bool:
        """RQ's work loop, then a drain of the runs still in flight."""
        try:
            return super().work(*args, **kwargs)
        finally:
            self.drain()

    def drain(self) -> None:
        """Wait until every run in flight has ended and RQ knows it."""
        if self._inflight:
            log.info("waiting for %d runs in flight to finish", len(self._inflight))
        while self._inflight:
            time.sleep(0.05)
            self.beat()
        self._bookkeeper_stop.set()
        self._bookkeeper.join(5)

    @property
    def in_flight(self) -> int:
        """Runs of this process that have started and not yet been finished in RQ."""
        return len(self._inflight)

    # -- the bookkeeping thread ---------------------------------------------------------------

    def _on_run_done(self, key: str, _future: Future[str]) -> None:
        # Runs on the loop thread: free the slot now, leave the Redis writes to the bookkeeper.
        self._slots.release()
        self._done.put(key)

    def _count_in_flight(self) -> None:
        count = len(self._inflight)
        self._in_flight_gauge.set(count)
        self._free_gauge.set(max(0, self.concurrency - count))

    def _bookkeep(self) -> None:
        interval = float(self.job_monitoring_interval)
        next_renewal = time.monotonic() + interval
        while not self._bookkeeper_stop.is_set() or not self._done.empty():
            try:
                key: str | None = self._done.get(timeout=max(0.01, next_renewal - time.monotonic()))
            except stdqueue.Empty:
                key = None
            if key is not None:
                self._finish(key)
            if time.monotonic() >= next_renewal:
                next_renewal = time.monotonic() + interval
                self._renew()

    def _finish(self, key: str) -> None:
        with self._inflight_lock:
            flight = self._inflight.get(key)
        if flight is None or flight.future is None:
            return
        job, queue, execution = flight.job, flight.queue, flight.execution
        job.ended_at = now()
        exc = flight.future.exception()
        try:
            if exc is None:
                job._status = rqcompat.FINISHED
                self.handle_job_success(job, queue, queue.started_job_registry, execution)
            else:
                log.error(
                    "run job failed; RQ re-queues it while it has retries left: %s",
                    "".join(traceback.format_exception_only(exc)).strip(),
                    extra={"run_id": job.id},
                )
                exc_string = "".join(traceback.format_exception(exc))
                self.handle_job_failure(job, queue, exc_string=exc_string, execution=execution)
        except Exception as error:
            # Redis away: the entry expires and maintenance re-queues the job; the run record
            # decides whether that delivery does anything.
            log.warning("could not finish job in RQ: %s", error, extra={"run_id": job.id})
        with self._inflight_lock:
            self._inflight.pop(key, None)
        self._count_in_flight()

    def _renew(self) -> None:
        with self._inflight_lock:
            flights = [(f.job, f.execution) for f in self._inflight.values()]
        if not flights:
            return
        try:
            rqcompat.renew(self, flights, self._job_ttl)
        except Exception as exc:
            # Redis away: the file goes stale, so /readyz tells; the runs go on.
            log.warning("job heartbeat failed: %s", exc)
            return
        self.beat()

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        """RQ's worker state, kept without a round trip of its own while runs are in flight."""
        if state == WorkerStatus.IDLE and self._inflight:
            # Busy while anything runs; RQ would flip it to idle before every dequeue.
            return
        super().set_state(state, pipeline)


def _run_payload(job: Job) -> RunJob:
    if job.func_name != JOB_FUNCTION or not job.args or not isinstance(job.args[0], dict):
        raise ValueError(f"job {job.id} is not a run job ({job.func_name})")
    payload: RunJob = job.args[0]  # type: ignore[assignment]
    return payload
