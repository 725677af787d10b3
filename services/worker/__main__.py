"""`python -m services.worker --processes N`: the worker supervisor (metrics on :9100)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from services.worker.config import get_worker_settings
from services.worker.supervisor import Supervisor
from shared.logs import configure_logging
from shared.settings import get_settings


def main() -> int:
    """Parse the command line and run the supervisor until it has drained."""
    settings = get_settings()
    worker_settings = get_worker_settings()
    parser = argparse.ArgumentParser(prog="python -m services.worker")
    parser.add_argument(
        "--processes",
        type=int,
        default=worker_settings.processes,
        help="worker processes (default: AUTOMATEOS_WORKER_PROCESSES or 1)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=worker_settings.concurrency,
        help="runs each process executes at once (default: AUTOMATEOS_WORKER_CONCURRENCY or 32)",
    )
    parser.add_argument("--host", default=settings.host, help="probe/metrics address")
    parser.add_argument("--port", type=int, default=settings.metrics_port)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if not 1 <= args.concurrency <= 1024:
        parser.error("--concurrency must be between 1 and 1024")
    worker_settings = worker_settings.model_copy(update={"concurrency": args.concurrency})
    configure_logging("worker", args.log_level.upper())
    supervisor = Supervisor(
        settings,
        worker_settings,
        processes=args.processes,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
    )
    return asyncio.run(supervisor.run())


if __name__ == "__main__":
    sys.exit(main())
