"""The RQ worker class: no fork per job, fast recovery, and a heartbeat readiness can trust.

`SimpleWorker` runs jobs in its own process (a fork per job measured 3-4x slower and would
throw away the process's pools). Plain `SimpleWorker` has two gaps we close here:

- it never renews a running job's entry in the started registry, so its expiry is set once to
  job timeout + 60 s, and a job whose worker died waits that long (16 minutes by default) to
  be re-queued. A thread renews it every few seconds with a short TTL instead;
- it only notices a dead Redis when the blocking dequeue times out (worker_ttl - 15 s). We
  dequeue with a short timeout and touch a heartbeat file after every successful round trip,
  which the supervisor's /readyz reads.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from redis.client import Pipeline
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import SimpleWorker, WorkerStatus

from services.worker.config import WorkerSettings

log = logging.getLogger(__name__)

_TOUCH_EVERY_S = 0.5
# RQ heartbeats the worker three times per job; its key lives worker_ttl + 60 s, so at high job
# rates one heartbeat a second is plenty and saves two round trips per job.
_HEARTBEAT_EVERY_S = 1.0


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


class _JobHeartbeat(threading.Thread):
    """Renews the running job's started-registry entry while it runs.

    One thread for the life of the process (starting one per job measured ~1 ms a job);
    `watch`/`release` only swap what it renews, under a lock held during a renewal, so no
    renewal of a job can happen after `release` returns.
    """

    def __init__(self, worker: RunWorker, interval: int) -> None:
        super().__init__(name="job-heartbeat", daemon=True)
        self.worker = worker
        self.interval = interval
        self._lock = threading.Lock()
        self._current: tuple[Job, Execution] | None = None

    def watch(self, job: Job, execution: Execution) -> None:
        with self._lock:
            self._current = (job, execution)

    def release(self) -> None:
        with self._lock:
            self._current = None

    def run(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                if self._current is None:
                    continue
                job, execution = self._current
                try:
                    self.worker.maintain_heartbeats(job, execution)
                except Exception as exc:
                    # Redis away: the file goes stale, so /readyz tells; the job goes on.
                    log.warning("job heartbeat failed: %s", exc, extra={"run_id": job.id})
                    continue
            self.worker.beat()


class RunWorker(SimpleWorker):
    """An RQ `SimpleWorker` tuned for prompt recovery and honest heartbeats."""

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
        **kwargs: Any,
    ) -> None:
        # Read by RQ's constructor (socket timeout), so set before it runs.
        self._dequeue_timeout = worker_settings.dequeue_timeout_seconds
        self._job_ttl = worker_settings.job_heartbeat_ttl_seconds
        self._heartbeat_file = heartbeat
        self._parent_pid = os.getppid()
        self._orphaned = False
        self._last_heartbeat = 0.0
        super().__init__(
            queues,
            job_class=ExpiringResultJob,
            worker_ttl=worker_settings.worker_ttl_seconds,
            job_monitoring_interval=worker_settings.job_heartbeat_interval_seconds,
            maintenance_interval=worker_settings.maintenance_interval_seconds,
            log_job_description=False,
            **kwargs,
        )
        self._job_heartbeat = _JobHeartbeat(self, int(self.job_monitoring_interval))
        self._job_heartbeat.start()

    @property
    def dequeue_timeout(self) -> int:
        """Seconds one blocking dequeue waits before the loop comes round again."""
        return self._dequeue_timeout

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """The started-registry TTL of a running job: short, because a thread renews it."""
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
            own.execute()
        self._last_heartbeat = current
        self.beat()

    def beat(self) -> None:
        """Touch the heartbeat file; stop gracefully if the supervisor is gone."""
        self._heartbeat_file.beat()
        if not self._orphaned and os.getppid() != self._parent_pid:
            # Without a supervisor nobody serves our probes or forwards SIGTERM: drain and go.
            self._orphaned = True
            log.warning("supervisor gone; finishing the current job and stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        """RQ's dequeue; a job it returns counts as ours at once (see `request_stop`)."""
        result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if result is not None:
            # Until RQ marks us busy, a SIGTERM would stop the worker with the job popped,
            # stranding it in RQ's intermediate queue until a maintenance pass re-queues it.
            self._state = WorkerStatus.BUSY
        return result

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in this process while a thread keeps its registry entry alive."""
        execution = self.prepare_execution(job)
        self._job_heartbeat.watch(job, execution)
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._job_heartbeat.release()
        # No `set_state(IDLE)` round trip here: the dequeue loop sets it again right away.

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Stop renewing the job, then note its end.

        RQ also heartbeats the job here to cover success/failure callbacks; run jobs have
        none, and the entry is removed in the same breath, so that round trip is skipped.
        """
        self._job_heartbeat.release()
        job.ended_at = now()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Warm shutdown: finish the current job, take no new one.

        While idle (blocked in the dequeue) it stops at once, as RQ does. RQ's version also
        talks to Redis inside the signal handler, which can deadlock on the connection pool's
        lock if the signal lands while the main thread holds it; this one does not.
        """
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        if self.get_state() == WorkerStatus.BUSY:
            self._stop_requested = True
            return
        raise StopRequested()
