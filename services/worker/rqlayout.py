"""RQ's data layout in Redis, read and written by the worker's asyncio consumer.

RQ stays the contract (its queue lists, job hashes, registries and worker records, so `rq info`,
RQ's tools, a stock `rq worker` and KEDA's list-length trigger all stay true), but its worker
loop is not used. Every state change a job goes through is one Lua script, atomic in
Redis (the scripts: rqscripts.py):

- `take`: pop up to N ready jobs from the queues (in the order given) and record each as
  started: job hash fields, an execution hash, the job's execution registry, the queue's
  started registry (`rq:wip:<queue>`) and the worker's execution set. A popped job is never
  only in memory: the pop and the started entry commit together, so a Redis or worker death
  leaves it either queued or started (and then recovered), never lost.
- `settle`: end one delivery: success (finished registry, or deletion with result_ttl 0),
  failure with retries left (back on the queue, or RQ's scheduled registry for retry
  intervals), or failure (failed registry). A delivery whose started entry was already
  recovered as abandoned changes nothing: the job belongs to its next delivery.
- `renew`: extend every in-flight execution and the worker's record in one call.
- `recover`: what RQ's `StartedJobRegistry.cleanup` does for abandoned jobs (retry or fail),
  plus expiring finished and failed entries, and moving due scheduled jobs onto the queue.

Field names, formats and scores are RQ 3's; tests/services/worker/test_rqlayout.py reads
what these scripts write with RQ's own `Queue`, `Job`, `Worker` and registry classes, and runs
a stock `rq worker` against the same queue.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from rq.version import VERSION as RQ_VERSION

from services.worker.rqscripts import RECOVER, RENEW, SETTLE, TAKE
from shared.queue import RQ_QUEUE_PREFIX

WORKERS_KEY = "rq:workers"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _clock() -> tuple[str, str]:
    """(epoch seconds, RQ's ISO format) for the present moment."""
    moment = datetime.now(UTC)
    return repr(moment.timestamp()), moment.strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class Delivery:
    """One job taken off a queue by this worker: what `settle` and `renew` need back."""

    job_id: str
    execution_id: str
    queue: str
    data: bytes
    timeout_s: float


@dataclass(frozen=True)
class Settlement:
    """How one delivery ended: `error` None for success."""

    delivery: Delivery
    error: str | None
    working_s: float


class RqLayout:
    """One worker's view of RQ's layout: its registration and its jobs' state changes."""

    def __init__(
        self,
        client: aioredis.Redis,
        worker_name: str,
        *,
        execution_ttl_s: int,
        worker_ttl_s: int,
    ) -> None:
        self.client = client
        self.worker_name = worker_name
        self.worker_key = f"rq:worker:{worker_name}"
        self.execution_ttl_s = execution_ttl_s
        # RQ keeps a worker's record worker_ttl + 60 s after its last heartbeat.
        self.worker_record_ttl_s = worker_ttl_s + 60
        self._take = client.register_script(TAKE)
        self._settle = client.register_script(SETTLE)
        self._renew = client.register_script(RENEW)
        self._recover = client.register_script(RECOVER)
        self._registered: set[str] = set()

    async def register(self, queues: Sequence[str]) -> None:
        """Record this worker's birth as RQ's `register_birth` does."""
        _stamp, iso = _clock()
        host = socket.gethostname()
        mapping: dict[str | bytes, str | int] = {
            "birth": iso,
            "last_heartbeat": iso,
            "queues": ",".join(queues),
            "pid": os.getpid(),
            "hostname": host,
            "ip_address": "",
            "version": RQ_VERSION,
            "python_version": sys.version,
            "state": "idle",
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.worker_key)
            pipe.hset(self.worker_key, mapping=mapping)  # type: ignore[arg-type]
            pipe.sadd(WORKERS_KEY, self.worker_key)
            for name in queues:
                pipe.sadd(f"rq:workers:{name}", self.worker_key)
            pipe.expire(self.worker_key, self.worker_record_ttl_s)
            await pipe.execute()
        self._registered = set(queues)

    async def register_queues(self, queues: Sequence[str]) -> None:
        """List this worker under queues it was not registered for (a queue added later)."""
        new = [name for name in queues if name not in self._registered]
        if not new:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            for name in new:
                pipe.sadd(f"rq:workers:{name}", self.worker_key)
            pipe.hset(self.worker_key, "queues", ",".join([*self._registered, *new]))
            await pipe.execute()
        self._registered.update(new)

    async def unregister(self) -> None:
        """Record this worker's death as RQ's `register_death` does."""
        _stamp, iso = _clock()
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.srem(WORKERS_KEY, self.worker_key)
            for name in self._registered:
                pipe.srem(f"rq:workers:{name}", self.worker_key)
            pipe.hset(self.worker_key, "death", iso)
            pipe.expire(self.worker_key, 60)
            pipe.delete(f"{self.worker_key}:executions")
            await pipe.execute()

    async def take(self, queues: Sequence[str], count: int) -> list[Delivery]:
        """Up to `count` ready jobs, popped and recorded as started in one round trip."""
        if count <= 0 or not queues:
            return []
        stamp, iso = _clock()
        ids = [uuid.uuid4().hex for _ in range(count)]
        rows = await self._take(
            keys=[RQ_QUEUE_PREFIX + name for name in queues],
            args=[count, self.worker_key, self.worker_name, stamp, iso, self.execution_ttl_s, *ids],
        )
        return [
            Delivery(
                _text(job_id),
                _text(execution_id),
                _text(queue),
                bytes(data),
                float(timeout or 0) if _text(timeout) else 0.0,
            )
            for job_id, execution_id, queue, data, timeout in rows
        ]

    async def settle(self, settlements: Sequence[Settlement]) -> list[str]:
        """End deliveries in one pipeline; per delivery what became of its job.

        "finished"/"deleted" (success), "retried"/"failed" (failure), "stale" (its started
        entry had already been recovered as abandoned), "gone" (the job hash was deleted).
        """
        return await self._end(
            [(item, "ok" if item.error is None else "fail") for item in settlements]
        )

    async def release(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Put deliveries cut short back at the front of their queue ("released")."""
        return await self._end([(Settlement(d, None, 0.0), "release") for d in deliveries])

    async def _end(self, settlements: Sequence[tuple[Settlement, str]]) -> list[str]:
        if not settlements:
            return []
        stamp, iso = _clock()
        async with self.client.pipeline(transaction=False) as pipe:
            for item, outcome in settlements:
                d = item.delivery
                await self._settle(
                    args=[
                        d.job_id,
                        d.execution_id,
                        d.queue,
                        self.worker_key,
                        outcome,
                        iso,
                        stamp,
                        repr(round(item.working_s, 6)),
                        item.error or "",
                    ],
                    client=pipe,
                )
            results = await pipe.execute()
        return [_text(result) for result in results]

    async def renew(self, deliveries: Sequence[Delivery], polled_key: str | None = None) -> None:
        """Heartbeat the worker and every delivery in flight (one round trip); with
        `polled_key`, also note when this worker last asked its queues for a job."""
        stamp, iso = _clock()
        args: list[Any] = [
            self.worker_key,
            self.execution_ttl_s,
            self.worker_record_ttl_s,
            stamp,
            iso,
        ]
        for d in deliveries:
            args += [d.job_id, d.execution_id, d.queue]
        if not deliveries or polled_key is not None:
            async with self.client.pipeline(transaction=False) as pipe:
                await self._renew(args=args, client=pipe)
                if not deliveries:
                    # Idle: RQ's worker says so between jobs.
                    pipe.hset(self.worker_key, "state", "idle")
                if polled_key is not None:
                    pipe.set(polled_key, repr(time.time()), ex=3600)
                await pipe.execute()
            return
        await self._renew(args=args)

    async def recover(self, queues: Sequence[str], batch: int = 100) -> list[tuple[str, str]]:
        """Retry or fail abandoned jobs, expire old entries, wake due scheduled jobs.

        Returns (job id, "retried" or "failed") per abandoned job found.
        """
        stamp, iso = _clock()
        rows = await self._recover(
            keys=[RQ_QUEUE_PREFIX + name for name in queues], args=[stamp, iso, batch]
        )
        return [(_text(job_id), _text(outcome)) for job_id, outcome in rows]
