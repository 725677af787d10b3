"""The wait and callback protocol of parked runs, in one place for every service.

A parked run (a long `delay`, a `wait_for_callback`, a `call_workflow` waiting for its child) is
`waiting` in PostgreSQL with `resume_at`: that row is the only record of when it resumes. The
worker supervisor's due-run poller (services/worker/dueruns.py, a leased singleton) enqueues the
continuation of every run whose `resume_at` has passed, through the one enqueue API.

A run whose workflow has a `wait_for_callback` step also has a callback key in Redis
(`shared.hooks.callback_key`), the only way ingest knows whether the run can take a callback.
Its value moves through: absent → "O:<owner>" (open: each delivery of the run opens it) →
"W:<owner>:<step position>" (parked on the callback) → "B:<owner><body>" (a POST came) → "C"
(closed: the resumed run took it, or the run ended). A POST that finds "W:" also adds the run to
the queue's wake set, so the poller resumes it within a second instead of at its timeout; a POST
that comes while the run is open but not parked yet is kept briefly, and the park finds it and
resumes at once. A POST that finds "C" or "B:" is answered 409; one that finds no key (a run that
never waits, or ended long ago) 404. A stored body counts against its owner's callback storage
until it is taken or expires (429 beyond the bound). Each side changes the key with one atomic
script, and every lifetime is defined here.
"""

from __future__ import annotations

# Open ("O:"): while a run that has a `wait_for_callback` step runs, its job timeout plus this
# slack, renewed by every delivery and extended over a timer park.
CALLBACK_OPEN_SLACK_S = 300
# Parked ("W:"): until the wait's timeout plus this slack.
CALLBACK_PARK_SLACK_S = 3600
# A body POSTed before the run parked ("B:" over "O:") is kept only this long.
CALLBACK_EARLY_BODY_TTL_S = 600
# Closed ("C"): a second POST is answered 409 for this long, then 404 like any run that cannot
# take a callback.
CALLBACK_CLOSED_TTL_S = 24 * 3600
# Bodies stored and not yet taken count against their run owner's callback storage (a setting,
# AUTOMATEOS_CALLBACK_STORAGE_MAX_BYTES_PER_USER); each counts as at least this many bytes.
CALLBACK_MIN_CHARGE_BYTES = 1024
CALLBACK_OWNER_CHARS = 36  # a UUID's text, at a fixed place in the key's value

CLOSED = "C"


def wake_key(queue_name: str) -> str:
    """Sorted set of run ids whose callback came while parked (score: when), per queue."""
    return f"automateos:wake:{queue_name}"


def callback_usage_keys(owner_id: str) -> tuple[str, str]:
    """The owner's stored callback bodies: (run id -> expiry zset, run id -> bytes hash with
    the running total under "_total")."""
    return f"automateos:callback-usage:{owner_id}", f"automateos:callback-sizes:{owner_id}"


USAGE_PREFIX, SIZES_PREFIX = callback_usage_keys("")

# The worker opens the key for a delivery. KEYS: the callback key. ARGV: owner, TTL. A no-op
# once the run parked on it, got its body or was closed.
OPEN = """
local state = redis.call('GET', KEYS[1])
if not state or string.sub(state, 1, 2) == 'O:' then
  redis.call('SET', KEYS[1], 'O:' .. ARGV[1], 'EX', ARGV[2])
end
return 1
"""

# The engine parks. KEYS: the callback key. ARGV: owner, step position, TTL, callback (1) or
# timer (0). A callback park returns 1 when the run now waits for it, 0 when a body already came
# (resume at once). A timer park keeps an open key open over the wait and returns 1.
PARK = """
local state = redis.call('GET', KEYS[1])
local open = not state or string.sub(state, 1, 2) == 'O:'
if ARGV[4] == '0' then
  if state and open then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
  return 1
end
if open then
  redis.call('SET', KEYS[1], 'W:' .. ARGV[1] .. ':' .. ARGV[2], 'EX', ARGV[3])
  return 1
end
if string.sub(state, 1, 2) == 'B:' then return 0 end
return 1
"""

# Ingest delivers a callback. KEYS: the callback key, the wake set. ARGV: body, now, early-body
# TTL, park slack, the owner's storage bound, usage prefix, sizes prefix, run id, minimum charge.
# Returns 2 (parked run woken), 1 (kept for a running run), 0 (answered or closed), -1 (no run
# can take it), -2 (the owner's callback storage is full).
DELIVER = """
local state = redis.call('GET', KEYS[1])
if not state then return -1 end
local kind = string.sub(state, 1, 2)
if kind ~= 'O:' and kind ~= 'W:' then return 0 end
local owner = string.sub(state, 3, 38)
local usage = ARGV[6] .. owner
local sizes = ARGV[7] .. owner
local now = tonumber(ARGV[2])
for _, run in ipairs(redis.call('ZRANGEBYSCORE', usage, '-inf', now)) do
  local old = redis.call('HGET', sizes, run)
  if old then
    redis.call('HINCRBY', sizes, '_total', -tonumber(old))
    redis.call('HDEL', sizes, run)
  end
end
redis.call('ZREMRANGEBYSCORE', usage, '-inf', now)
local charge = math.max(string.len(ARGV[1]), tonumber(ARGV[9]))
local used = tonumber(redis.call('HGET', sizes, '_total') or '0')
if used + charge > tonumber(ARGV[5]) then return -2 end
local ttl = tonumber(ARGV[3])
if kind == 'W:' then ttl = math.max(redis.call('TTL', KEYS[1]), tonumber(ARGV[4])) end
redis.call('SET', KEYS[1], 'B:' .. owner .. ARGV[1], 'EX', ttl)
redis.call('ZADD', usage, now + ttl, ARGV[8])
redis.call('HSET', sizes, ARGV[8], charge)
redis.call('HINCRBY', sizes, '_total', charge)
for _, key in ipairs({usage, sizes}) do
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end
if kind == 'W:' then
  redis.call('ZADD', KEYS[2], now, ARGV[8])
  return 2
end
return 1
"""

# The engine takes the callback (or the run ended). KEYS: the callback key. ARGV: closed TTL,
# usage prefix, sizes prefix, run id. Returns the body if one came (releasing its storage) and
# closes the key either way.
TAKE = """
local state = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'C', 'EX', ARGV[1])
if state and string.sub(state, 1, 2) == 'B:' then
  local owner = string.sub(state, 3, 38)
  local sizes = ARGV[3] .. owner
  local size = redis.call('HGET', sizes, ARGV[4])
  if size then
    redis.call('HINCRBY', sizes, '_total', -tonumber(size))
    redis.call('HDEL', sizes, ARGV[4])
  end
  redis.call('ZREM', ARGV[2] .. owner, ARGV[4])
  return string.sub(state, 39)
end
return false
"""
