"""One worker process: `python -m services.worker.process --index I --run-dir DIR`.

Started by the supervisor, never by hand: it expects the supervisor's private
PROMETHEUS_MULTIPROC_DIR in its environment and writes its heartbeat into the run folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from pathlib import Path

import redis
from rq.serializers import JSONSerializer

from services.worker import runtime
from services.worker.config import get_worker_settings
from services.worker.flow.priority import dequeue_order
from services.worker.loop import LoopWatchdog
from services.worker.pool import heartbeat_path
from services.worker.worker import HeartbeatFile, RunWorker
from shared.flow import priority_queues
from shared.logs import configure_logging
from shared.settings import get_settings
from shared.telemetry import configure_tracing, flush_tracing

log = logging.getLogger("services.worker.process")

# At shutdown: time to export the spans still batched. The supervisor waits for its processes
# to exit, so this only has to fit in the pod's grace period with the last job.
TRACE_FLUSH_S = 5.0


class _WorkerIndex(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def main() -> None:
    """Build the runtime once, then work the queue until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m services.worker.process")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()

    # Three threads share the GIL (RQ's loop, the engine loop, RQ bookkeeping): the default 5 ms
    # switch interval would let a busy engine loop hold off a Redis reply for that long.
    sys.setswitchinterval(0.001)
    configure_logging("worker", args.log_level.upper())
    # httpx logs every request's full URL at INFO; query strings carry API keys.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerIndex(args.index))
    configure_tracing("worker")
    settings = get_settings()
    worker_settings = get_worker_settings()
    if args.concurrency is not None:
        worker_settings = worker_settings.model_copy(update={"concurrency": args.concurrency})

    worker_runtime = runtime.WorkerRuntime(settings, worker_settings)
    runtime.install(worker_runtime)
    try:
        worker_runtime.warm_up()
        connection = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=5, health_check_interval=30
        )
        worker = RunWorker(
            priority_queues(settings.queue_name),
            name=f"automateos-{socket.gethostname()}-{os.getpid()}-{args.index}",
            connection=connection,
            serializer=JSONSerializer,
            # The run record in PostgreSQL is the result; RQ's copy would only cost writes.
            default_result_ttl=0,
            heartbeat=HeartbeatFile(heartbeat_path(args.run_dir, args.index)),
            worker_settings=worker_settings,
            start_run=worker_runtime.start,
            watchdog=LoopWatchdog(worker_runtime.engine_loop, worker_settings.loop_stall_seconds),
            concurrency=worker_settings.concurrency,
            slot_label=str(args.index),
            queue_order=dequeue_order(settings.queue_name),
        )
        log.info(
            "worker process %d ready on queue %s (%d runs at once)",
            args.index,
            settings.queue_name,
            worker_settings.concurrency,
        )
        # RQ's per-job INFO lines would cost more than the job at high rates.
        worker.work(logging_level="WARNING")
    finally:
        runtime.install(None)
        worker_runtime.close()
        # The last runs' spans are still in the batch; a process that exits drops them.
        if not flush_tracing(TRACE_FLUSH_S):
            log.warning("could not export every span before stopping")


if __name__ == "__main__":
    main()
