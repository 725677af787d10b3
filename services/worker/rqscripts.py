"""The Lua scripts behind `rqlayout.RqLayout`: every state change of a job, atomic in Redis.

Field names, formats and scores are RQ 3's (see rqlayout.py and its tests).
"""

from __future__ import annotations

from shared.queue import RQ_QUEUE_PREFIX

# The queue key minus its prefix is the queue name, which names its registries.
QUEUE_NAME = f"local function qname(key) return string.sub(key, {len(RQ_QUEUE_PREFIX) + 1}) end\n"

# KEYS: queue lists, highest priority first. ARGV: max jobs, worker key, worker name,
# epoch seconds (string), ISO time, execution TTL, then one fresh execution id per job.
TAKE = (
    QUEUE_NAME
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
FAIL = """
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
SETTLE = (
    FAIL
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
RENEW = """
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
RECOVER = (
    QUEUE_NAME
    + FAIL
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
