"""RQ's data layout in Redis, read and written by the worker's asyncio consumer.

RQ stays the contract (its queue lists, job hashes, registries and worker records, so `rq info`,
RQ's tools, a stock `rq worker` and KEDA's list-length trigger all stay true), but its worker
loop is not used. Every state change a job goes through is one Lua script here, atomic in
Redis:

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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from rq.version import VERSION as RQ_VERSION

from shared.queue import RQ_QUEUE_PREFIX

WORKERS_KEY = "rq:workers"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

# The queue key minus its prefix is the queue name, which names its registries.
_QUEUE_NAME = f"local function qname(key) return string.sub(key, {len(RQ_QUEUE_PREFIX) + 1}) end\n"

# KEYS: queue lists, highest priority first. ARGV: max jobs, worker key, worker name,
# epoch seconds (string), ISO time, execution TTL, then one fresh execution id per job.
_TAKE = (
    _QUEUE_NAME
    + """
local max = tonumber(ARGV[1])
local wkey, wname, stamp, iso = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ttl = tonumber(ARGV[6])
local score = math.floor(tonumber(stamp)) + ttl
local out = {}
for _, queue in ipairs(KEYS) do
  local name = qname(queue)
  while #out < max do
    local id = redis.call('LPOP', queue)
    if not id then break end
    local jkey = 'rq:job:' .. id
    local fields = redis.call('HMGET', jkey, 'data', 'timeout')
    -- An id whose hash is gone (deleted by hand, expired) is skipped, as RQ's dequeue does.
    if fields[1] then
      local eid = ARGV[7 + #out]
      local composite = id .. ':' .. eid
      local ekey = 'rq:execution:' .. composite
      redis.call('HSET', jkey, 'status', 'started', 'worker_name', wname,
        'started_at', iso, 'last_heartbeat', iso)
      redis.call('PERSIST', jkey)
      redis.call('HSET', ekey, 'id', eid, 'job_id', id, 'created_at', stamp,
        'last_heartbeat', stamp, 'worker_name', wname)
      redis.call('EXPIRE', ekey, ttl)
      redis.call('ZADD', 'rq:executions:' .. id, score + 60, eid)
      redis.call('EXPIRE', 'rq:executions:' .. id, ttl + 60)
      redis.call('ZADD', 'rq:wip:' .. name, score, composite)
      redis.call('SADD', wkey .. ':executions', composite)
      out[#out + 1] = {id, eid, name, fields[1], fields[2] or ''}
    end
  end
end
if #out > 0 then
  redis.call('EXPIRE', wkey .. ':executions', ttl + 60)
  redis.call('HSET', wkey, 'state', 'busy')
end
return out
"""
)

# Shared by `settle` and `recover`: a failed delivery is retried while the job has retries
# left (RQ's `Job.retry`), else moved to the failed registry (RQ's `FailedJobRegistry.add`).
_FAIL = """
local function fail(id, name, iso, now, exc)
  local jkey = 'rq:job:' .. id
  local f = redis.call('HMGET', jkey, 'retries_left', 'retry_intervals', 'failure_ttl')
  local left = tonumber(f[1] or '0') or 0
  if left > 0 then
    local wait = 0
    if f[2] and f[2] ~= '' then
      local intervals = cjson.decode(f[2])
      if type(intervals) == 'table' and #intervals > 0 then
        wait = tonumber(intervals[math.max(#intervals - left, 0) + 1]) or 0
      end
    end
    redis.call('HSET', jkey, 'retries_left', left - 1)
    if wait > 0 then
      redis.call('HSET', jkey, 'status', 'scheduled')
      redis.call('ZADD', 'rq:scheduled:' .. name, now + wait, id)
    else
      redis.call('HSET', jkey, 'status', 'queued', 'enqueued_at', iso)
      redis.call('RPUSH', 'rq:queue:' .. name, id)
      redis.call('SADD', 'rq:queues', 'rq:queue:' .. name)
    end
    return 'retried'
  end
  local ttl = tonumber(f[3] or '') or 31536000
  redis.call('HSET', jkey, 'status', 'failed', 'ended_at', iso, 'exc_info', exc)
  if ttl > 0 then redis.call('EXPIRE', jkey, ttl) end
  redis.call('ZADD', 'rq:failed:' .. name, ttl < 0 and '+inf' or now + ttl, id)
  return 'failed'
end
"""

# ARGV: job id, execution id, queue name, worker key, 'ok', 'fail' or 'release', ISO time, epoch
# seconds, working seconds, error text.
_SETTLE = (
    _FAIL
    + """
local id, eid, name, wkey, outcome, iso = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local now = math.floor(tonumber(ARGV[7]))
local composite = id .. ':' .. eid
redis.call('DEL', 'rq:execution:' .. composite)
redis.call('ZREM', 'rq:executions:' .. id, eid)
redis.call('SREM', wkey .. ':executions', composite)
redis.call('HINCRBYFLOAT', wkey, 'total_working_time', ARGV[8])
if redis.call('ZREM', 'rq:wip:' .. name, composite) == 0 then return 'stale' end
local jkey = 'rq:job:' .. id
if redis.call('EXISTS', jkey) == 0 then return 'gone' end
if outcome == 'release' then
  -- Cut short at shutdown: next in line, without spending a retry.
  redis.call('HSET', jkey, 'status', 'queued', 'enqueued_at', iso)
  redis.call('LPUSH', 'rq:queue:' .. name, id)
  return 'released'
end
if outcome ~= 'ok' then
  redis.call('HINCRBY', wkey, 'failed_job_count', 1)
  return fail(id, name, iso, now, ARGV[9])
end
redis.call('HINCRBY', wkey, 'successful_job_count', 1)
local ttl = tonumber(redis.call('HGET', jkey, 'result_ttl') or '') or 500
if ttl == 0 then
  redis.call('DEL', jkey)
  return 'deleted'
end
redis.call('HSET', jkey, 'status', 'finished', 'ended_at', iso)
if ttl > 0 then redis.call('EXPIRE', jkey, ttl) end
redis.call('ZADD', 'rq:finished:' .. name, ttl < 0 and '+inf' or now + ttl, id)
return 'finished'
"""
)

# ARGV: worker key, execution TTL, worker TTL, epoch seconds, ISO time, then (job id,
# execution id, queue name) per run in flight. RQ's job heartbeat is a plain HSET, which
# would recreate a job hash deleted meanwhile; this one touches only hashes that exist.
_RENEW = """
local wkey, ttl, wttl, stamp, iso = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], ARGV[5]
local score = math.floor(tonumber(stamp)) + ttl
redis.call('HSET', wkey, 'last_heartbeat', iso)
redis.call('EXPIRE', wkey, wttl)
redis.call('EXPIRE', wkey .. ':executions', wttl)
for i = 6, #ARGV, 3 do
  local id, eid, name = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local composite = id .. ':' .. eid
  local ekey = 'rq:execution:' .. composite
  if redis.call('EXISTS', ekey) == 1 then
    redis.call('HSET', ekey, 'last_heartbeat', stamp)
    redis.call('EXPIRE', ekey, ttl)
  end
  redis.call('ZADD', 'rq:wip:' .. name, 'XX', score, composite)
  redis.call('ZADD', 'rq:executions:' .. id, 'XX', score + 60, eid)
  if redis.call('EXISTS', 'rq:job:' .. id) == 1 then
    redis.call('HSET', 'rq:job:' .. id, 'last_heartbeat', iso)
  end
end
return 1
"""

# KEYS: queue lists. ARGV: epoch seconds, ISO time, batch. Per queue: abandoned started
# entries (expired: their worker stopped renewing) are retried or failed as RQ's cleanup does;
# expired finished/failed entries are dropped; due scheduled jobs are moved onto the queue.
_RECOVER = (
    _QUEUE_NAME
    + _FAIL
    + """
local now, iso, batch = math.floor(tonumber(ARGV[1])), ARGV[2], tonumber(ARGV[3])
local recovered = {}
for _, queue in ipairs(KEYS) do
  local name = qname(queue)
  local wip = 'rq:wip:' .. name
  for _, composite in ipairs(redis.call('ZRANGEBYSCORE', wip, 0, now, 'LIMIT', 0, batch)) do
    redis.call('ZREM', wip, composite)
    local sep = string.find(composite, ':', 1, true)
    local id = sep and string.sub(composite, 1, sep - 1) or composite
    redis.call('DEL', 'rq:execution:' .. composite)
    local f = redis.call('HMGET', 'rq:job:' .. id, 'status', 'worker_name')
    if f[2] then redis.call('SREM', 'rq:worker:' .. f[2] .. ':executions', composite) end
    if f[1] == 'started' then
      local exc = 'Moved to FailedJobRegistry, due to AbandonedJobError, at ' .. iso
      recovered[#recovered + 1] = {id, fail(id, name, iso, now, exc)}
    end
  end
  redis.call('ZREMRANGEBYSCORE', 'rq:finished:' .. name, 0, now)
  redis.call('ZREMRANGEBYSCORE', 'rq:failed:' .. name, 0, now)
  local scheduled = 'rq:scheduled:' .. name
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', scheduled, 0, now, 'LIMIT', 0, batch)) do
    redis.call('ZREM', scheduled, id)
    if redis.call('EXISTS', 'rq:job:' .. id) == 1 then
      redis.call('HSET', 'rq:job:' .. id, 'status', 'queued', 'enqueued_at', iso)
      redis.call('RPUSH', queue, id)
    end
  end
end
return recovered
"""
)


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
        self._take = client.register_script(_TAKE)
        self._settle = client.register_script(_SETTLE)
        self._renew = client.register_script(_RENEW)
        self._recover = client.register_script(_RECOVER)
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

    async def renew(self, deliveries: Sequence[Delivery]) -> None:
        """Heartbeat the worker and every delivery in flight (one round trip)."""
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
        if not deliveries:
            # Idle: RQ's worker says so between jobs.
            async with self.client.pipeline(transaction=False) as pipe:
                await self._renew(args=args, client=pipe)
                pipe.hset(self.worker_key, "state", "idle")
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
