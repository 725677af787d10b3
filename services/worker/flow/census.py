"""`automateos_runs_waiting{reason}`: how many runs wait, by why (shared/flow.py WAITING_REASONS).

Counted by the supervisor every `interval_s` (not at scrape: a scrape must not query
PostgreSQL) from the run rows that record a reason (held back by flow control, parked) and
from Redis (the jobs in the priority queues: `queue`, or `no_worker` when no worker asked the
queues for a job lately). Labels are the closed set of reasons, so the series stay bounded.
Every replica reports the same values: aggregate with max, as for `automateos_queue_jobs`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

import redis.asyncio as aioredis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.flow import NO_WORKER_AFTER_S, WAITING_REASONS, polled_key, priority_queues
from shared.queue import queue_key

log = logging.getLogger(__name__)

# Only rows a flow decision or a park gave a reason: a queued row without one (a manual run)
# is on a queue list, counted from Redis. Served by ix_workflow_runs_waiting_reason.
_COUNTS = text(
    """
    SELECT waiting_reason, count(*) FROM workflow_runs
    WHERE status IN ('queued', 'waiting') AND waiting_reason IS NOT NULL
    GROUP BY waiting_reason
    """
)


class WaitingCensus(Collector):
    """Counts waiting runs by reason on a timer; yields the last count when scraped."""

    def __init__(
        self, db: AsyncEngine, client: aioredis.Redis, queue_name: str, interval_s: float
    ) -> None:
        self.db = db
        self.client = client
        self.queue_name = queue_name
        self.interval_s = interval_s
        self.counts: dict[str, int] = dict.fromkeys(WAITING_REASONS, 0)

    async def count_once(self) -> dict[str, int]:
        """Count now; the result is also what the next scrape reports."""
        counts = dict.fromkeys(WAITING_REASONS, 0)
        async with self.db.connect() as conn:
            for reason, count in (await conn.execute(_COUNTS)).all():
                if reason in counts:
                    counts[reason] += int(count)
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(polled_key(self.queue_name))
            for queue in priority_queues(self.queue_name):
                pipe.llen(queue_key(queue))
            polled, *lengths = await pipe.execute()
        queued = sum(int(length) for length in lengths)
        idle = polled is None or time.time() - float(polled) > NO_WORKER_AFTER_S
        counts["no_worker" if idle and queued else "queue"] += queued
        self.counts = counts
        return counts

    async def run_forever(self) -> None:
        """Count every `interval_s`; a failed count keeps the previous one (and says so)."""
        while True:
            try:
                await self.count_once()
            except Exception as exc:
                log.warning("could not count waiting runs: %s", exc)
            await asyncio.sleep(self.interval_s)

    def collect(self) -> Iterable[Metric]:
        """Yield the gauge from the last count."""
        family = GaugeMetricFamily(
            "automateos_runs_waiting",
            "Runs queued or waiting, by why they do not run (docs/flow-control.md).",
            labels=["reason"],
        )
        for reason, count in self.counts.items():
            family.add_metric([reason], float(count))
        yield family
