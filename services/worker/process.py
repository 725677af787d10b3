"""One worker process: `python -m services.worker.process --index I --run-dir DIR`.

Started by the supervisor, never by hand: it expects the supervisor's private
PROMETHEUS_MULTIPROC_DIR in its environment and writes its heartbeat into the run folder.

One thread runs everything: the queue consumer and every run share the main thread's event
loop. Plugins declared blocking run on a bounded thread pool; the loop watchdog is a daemon
thread that only reads the loop's clock.

Stopping is bounded: SIGTERM drains for at most `shutdown_grace_seconds` (default: the job
timeout), SIGINT for at most `_INTERACTIVE_GRACE_S`; a second signal cuts the runs short at
once. If the supervisor dies, the process notices within `_ORPHAN_CHECK_S` and stops with a
short grace, so it never outlives it by more than seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis.asyncio as aioredis

from services.worker.config import WorkerSettings, get_worker_settings
from services.worker.consumer import Consumer, HeartbeatFile
from services.worker.flow.priority import dequeue_order
from services.worker.loop import LoopWatchdog
from services.worker.pool import heartbeat_path
from services.worker.rqlayout import RqLayout
from services.worker.runtime import WorkerRuntime
from shared.flow import polled_key
from shared.logs import configure_logging
from shared.settings import Settings, get_settings
from shared.telemetry import configure_tracing, flush_tracing

log = logging.getLogger("services.worker.process")

# At shutdown: time to export the spans still batched. The supervisor waits for its processes
# to exit, so this only has to fit in the pod's grace period with the last job.
TRACE_FLUSH_S = 5.0
_ORPHAN_CHECK_S = 0.5
# Without a supervisor nobody serves our probes or forwards signals: finish quickly and go.
_ORPHAN_GRACE_S = 1.0
_INTERACTIVE_GRACE_S = 8.0


class _WorkerIndex(logging.Filter):
    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.index
        return True


def main() -> None:
    """Configure logging and tracing, then consume until told to stop."""
    parser = argparse.ArgumentParser(prog="python -m services.worker.process")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()

    configure_logging("worker", args.log_level.upper())
    # httpx logs every request's full URL at INFO; query strings carry API keys.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerIndex(args.index))
    configure_tracing("worker")
    worker_settings = get_worker_settings()
    if args.concurrency is not None:
        worker_settings = worker_settings.model_copy(update={"concurrency": args.concurrency})
    try:
        asyncio.run(serve(get_settings(), worker_settings, args.index, args.run_dir))
    finally:
        # The last runs' spans are still in the batch; a process that exits drops them.
        if not flush_tracing(TRACE_FLUSH_S):
            log.warning("could not export every span before stopping")


async def serve(
    settings: Settings, worker_settings: WorkerSettings, index: int, run_dir: Path
) -> None:
    """Build the runtime once, then consume the queue until stopped and drained."""
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(worker_settings.blocking_threads, thread_name_prefix="blocking-node")
    )
    runtime = WorkerRuntime(settings, worker_settings)
    watchdog = LoopWatchdog(runtime.engine_loop, worker_settings.loop_stall_seconds)
    client = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=10
    )
    blocking = aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=5,
        socket_timeout=worker_settings.dequeue_timeout_seconds + 5,
    )
    layout = RqLayout(
        client,
        f"automateos-{socket.gethostname()}-{os.getpid()}-{index}",
        execution_ttl_s=worker_settings.job_heartbeat_ttl_seconds,
        worker_ttl_s=worker_settings.worker_ttl_seconds,
    )
    # Every priority's queue, in the order the rotation gives for the number of takes that
    # found jobs so far (flow/priority.py: 12 of 16 ask high first, 3 normal, 1 low).
    order = dequeue_order(settings.queue_name)
    consumer = Consumer(
        layout,
        blocking,
        runtime.execute,
        queues=lambda: order(consumer.takes),
        concurrency=worker_settings.concurrency,
        default_timeout_s=float(settings.job_timeout_seconds),
        idle_block_s=float(worker_settings.dequeue_timeout_seconds),
        renew_every_s=float(worker_settings.job_heartbeat_interval_seconds),
        recover_every_s=float(worker_settings.scheduler_interval_seconds),
        heartbeat=HeartbeatFile(heartbeat_path(run_dir, index)),
        slot_label=str(index),
        polled_key=polled_key(settings.queue_name),
    )
    stops = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal stops
        stops += 1
        if stops > 1:
            log.warning("%s again: runs in flight are cut short and re-queued", sig.name)
        grace = worker_settings.shutdown_grace_seconds
        if grace is None:
            grace = float(settings.job_timeout_seconds)
        if sig == signal.SIGINT:
            # Someone at a terminal (Ctrl-C on `make up`) waits for it.
            grace = min(grace, _INTERACTIVE_GRACE_S)
        consumer.stop(grace if stops == 1 else 0.0)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    orphan_watch = loop.create_task(_stop_when_orphaned(consumer))
    watchdog.start()
    try:
        await runtime.warm_up()
        log.info(
            "worker process %d ready on queue %s (%d runs at once)",
            index,
            settings.queue_name,
            worker_settings.concurrency,
        )
        await consumer.run()
    finally:
        orphan_watch.cancel()
        watchdog.stop()
        await client.aclose()
        await blocking.aclose()
        await runtime.close()


async def _stop_when_orphaned(consumer: Consumer) -> None:
    parent = os.getppid()
    # A poll, not PR_SET_PDEATHSIG: portable, and cheap at twice a second.
    while os.getppid() == parent:  # noqa: ASYNC110
        await asyncio.sleep(_ORPHAN_CHECK_S)
    log.warning("supervisor gone; stopping within %.0fs", _ORPHAN_GRACE_S)
    consumer.stop(_ORPHAN_GRACE_S)


if __name__ == "__main__":
    main()
