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
    """Renews the running job's started-registry entry while the job runs."""

    def __init__(self, worker: RunWorker, job: Job, execution: Execution, interval: int) -> None:
        super().__init__(name=f"job-heartbeat-{job.id}", daemon=True)
        self.worker = worker
        self.job = job
        self.execution = execution
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.worker.maintain_heartbeats(self.job, self.execution)
            except Exception as exc:
                # Redis away: the file goes stale, so /readyz tells; the job goes on.
                log.warning("job heartbeat failed: %s", exc, extra={"run_id": self.job.id})
                continue
            self.worker.beat()

    def stop(self) -> None:
        self.stopped.set()
        if self is not threading.current_thread():
            self.join(timeout=5)


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
        self._job_heartbeat: _JobHeartbeat | None = None
        self._parent_pid = os.getppid()
        self._orphaned = False
        super().__init__(
            queues,
            worker_ttl=worker_settings.worker_ttl_seconds,
            job_monitoring_interval=worker_settings.job_heartbeat_interval_seconds,
            maintenance_interval=worker_settings.maintenance_interval_seconds,
            log_job_description=False,
            **kwargs,
        )

    @property
    def dequeue_timeout(self) -> int:
        """Seconds one blocking dequeue waits before the loop comes round again."""
        return self._dequeue_timeout

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """The started-registry TTL of a running job: short, because a thread renews it."""
        return self._job_ttl

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        """RQ's worker heartbeat in one round trip instead of three, then the file heartbeat."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline)
            return
        with self.connection.pipeline() as own:
            super().heartbeat(timeout, own)
            own.execute()
        self.beat()

    def beat(self) -> None:
        """Touch the heartbeat file; stop gracefully if the supervisor is gone."""
        self._heartbeat_file.beat()
        if not self._orphaned and os.getppid() != self._parent_pid:
            # Without a supervisor nobody serves our probes or forwards SIGTERM: drain and go.
            self._orphaned = True
            log.warning("supervisor gone; finishing the current job and stopping")
            os.kill(os.getpid(), signal.SIGTERM)

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job in this process while a thread keeps its registry entry alive."""
        execution = self.prepare_execution(job)
        self._job_heartbeat = _JobHeartbeat(self, job, execution, int(self.job_monitoring_interval))
        self._job_heartbeat.start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._stop_job_heartbeat()
        self.set_state(WorkerStatus.IDLE)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Stop renewing before RQ records the job's end, so no renewal outlives the job."""
        self._stop_job_heartbeat()
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def _stop_job_heartbeat(self) -> None:
        if self._job_heartbeat is not None:
            self._job_heartbeat.stop()
            self._job_heartbeat = None

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Warm shutdown: finish the current job, take no new one.

        RQ's version talks to Redis inside the signal handler, which can deadlock on the
        connection pool's lock if the signal lands while the main thread holds it.
        """
        self._shutdown_requested_date = now()
        signal.signal(signal.SIGINT, self.request_force_stop)
        signal.signal(signal.SIGTERM, self.request_force_stop)
        if self.get_state() == WorkerStatus.BUSY:
            self._stop_requested = True
            return
        raise StopRequested()
