"""Run history retention: delete old runs in small batches, in the background, on one replica.

Per workflow (its `retention` overrides the deployment defaults):
- runs accepted more than `days` ago (`AUTOMATEOS_RUN_RETENTION_DAYS`, 14) are deleted;
- beyond the newest `max_runs` (`AUTOMATEOS_RUN_RETENTION_MAX_PER_WORKFLOW`, 10,000), older
  runs are deleted;
- with `keep_details: "failed"`, the steps of runs that did not fail are deleted (the runs stay).
A run that is `queued`, `running` or `waiting` is never touched: every statement names the
terminal statuses. Steps go with their run (foreign key cascade).

Why it cannot stall ingest or the workers: ingest never reads PostgreSQL; each statement deletes
at most `AUTOMATEOS_RUN_RETENTION_BATCH` (500) runs in its own short transaction, found through
the (workflow_id, id) index (run ids are UUIDv7, so id order is age order); it gives up at once
on a lock (`lock_timeout`) instead of queueing behind a worker, and rests twice as long as each
batch took before the next (so it keeps at most a third of one connection busy).
It runs in the worker supervisor, a process of its own, not in the worker processes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.worker.lease import Lease

log = logging.getLogger(__name__)

_TERMINAL = "('succeeded', 'failed', 'cancelled')"
_WORKFLOWS = text("SELECT id, retention FROM workflows WHERE id > :after ORDER BY id LIMIT :limit")
_BY_AGE = text(
    f"""
    DELETE FROM workflow_runs WHERE id IN (
        SELECT id FROM workflow_runs
        WHERE workflow_id = :workflow_id AND id < :before_id AND accepted_at < :before
          AND status IN {_TERMINAL}
        ORDER BY id LIMIT :limit)
    """  # noqa: S608 (a constant, not input)
)
_NEWEST_KEPT = text(
    """
    SELECT id FROM workflow_runs WHERE workflow_id = :workflow_id
    ORDER BY id DESC OFFSET :keep LIMIT 1
    """
)
_BY_COUNT = text(
    f"""
    DELETE FROM workflow_runs WHERE id IN (
        SELECT id FROM workflow_runs
        WHERE workflow_id = :workflow_id AND id <= :boundary AND status IN {_TERMINAL}
        ORDER BY id LIMIT :limit)
    """  # noqa: S608
)
_DETAILS = text(
    """
    DELETE FROM run_steps WHERE run_id IN (
        SELECT r.id FROM workflow_runs AS r
        WHERE r.workflow_id = :workflow_id AND r.status IN ('succeeded', 'cancelled')
          AND EXISTS (SELECT 1 FROM run_steps AS s WHERE s.run_id = r.id)
        ORDER BY r.id DESC LIMIT :limit)
    """
)


def uuid7_floor(moment: datetime) -> uuid.UUID:
    """The smallest UUIDv7 of `moment`'s millisecond: every run id accepted before is lower."""
    return uuid.UUID(int=(int(moment.timestamp() * 1000) << 80) | (0x7 << 76) | (0b10 << 62))


class LeaseLost(Exception):
    """Another replica holds the retention lease now: this pass stops."""


@dataclass
class PruneStats:
    """What one pass deleted."""

    by_age: int = 0
    by_count: int = 0
    steps: int = 0


class RetentionPruner:
    """Deletes what retention allows, `batch` rows per statement; `prune_once` is one pass."""

    def __init__(
        self,
        db: AsyncEngine,
        client: aioredis.Redis,
        lease_key: str,
        *,
        days: float,
        max_runs: int,
        interval_s: float,
        batch: int,
        pause_s: float = 0.02,
        rest_ratio: float = 2.0,
    ) -> None:
        self.db = db
        # After a batch that took t seconds, rest rest_ratio * t: the pruner keeps at most
        # 1 / (1 + rest_ratio) of one connection busy, however slow the database is today.
        self.rest_ratio = rest_ratio
        self.days = days
        self.max_runs = max_runs
        self.interval_s = interval_s
        self.batch = batch
        self.pause_s = pause_s
        self.lease = Lease(client, lease_key, max(10.0, interval_s))

    async def run_forever(self) -> None:
        """Prune every interval while this replica holds the lease. Never raises."""
        while True:
            try:
                if await self.lease.hold():
                    stats = await self.prune_once()
                    if stats.by_age or stats.by_count or stats.steps:
                        log.info("run history pruned", extra=stats.__dict__)
            except Exception as exc:  # an outage: the next pass tries again
                log.warning("run retention pass failed: %s: %s", type(exc).__name__, exc)
            await asyncio.sleep(self.interval_s)

    async def prune_once(self, now: datetime | None = None) -> PruneStats:
        """One pass over every workflow; stops early when the lease is lost."""
        stats = PruneStats()
        after = uuid.UUID(int=0)
        current = now or datetime.now(UTC)
        while True:
            async with self.db.connect() as conn:
                workflows = (await conn.execute(_WORKFLOWS, {"after": after, "limit": 200})).all()
            if not workflows:
                return stats
            for row in workflows:
                try:
                    await self._workflow(row.id, row.retention or {}, current, stats)
                except LeaseLost:
                    return stats
                if not await self.lease.hold():
                    return stats
            after = workflows[-1].id

    async def _workflow(
        self, workflow_id: uuid.UUID, retention: dict[str, Any], now: datetime, stats: PruneStats
    ) -> None:
        before = now - timedelta(days=float(retention.get("days") or self.days))
        age = {"workflow_id": workflow_id, "before": before, "before_id": uuid7_floor(before)}
        stats.by_age += await self._drain(_BY_AGE, age)
        keep = int(retention.get("max_runs") or self.max_runs)
        async with self.db.connect() as conn:
            boundary = await conn.scalar(_NEWEST_KEPT, {"workflow_id": workflow_id, "keep": keep})
        if boundary is not None:
            count = {"workflow_id": workflow_id, "boundary": boundary}
            stats.by_count += await self._drain(_BY_COUNT, count)
        if retention.get("keep_details") == "failed":
            stats.steps += await self._drain(_DETAILS, {"workflow_id": workflow_id})

    async def _drain(self, statement: Any, params: dict[str, Any]) -> int:
        """Run a bounded DELETE until it deletes less than a batch; return the rows deleted."""
        total = 0
        while True:
            started = time.monotonic()
            async with self.db.connect() as conn:
                deleted = await self._delete(conn, statement, params)
            total += deleted
            if deleted < self.batch:
                return total
            await asyncio.sleep(max(self.pause_s, (time.monotonic() - started) * self.rest_ratio))
            # A long drain keeps the lease, or stops when another replica has taken it over.
            if not await self.lease.hold():
                raise LeaseLost

    async def _delete(self, conn: AsyncConnection, statement: Any, params: dict[str, Any]) -> int:
        async with conn.begin():
            # Never wait behind a worker's lock: skip this batch, the next pass retries.
            await conn.execute(text("SET LOCAL lock_timeout = '1s'"))
            result = await conn.execute(statement, {**params, "limit": self.batch})
        return int(result.rowcount)
