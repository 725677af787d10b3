"""The Redis side of flow control: one Lua script per decision, so each is atomic.

Concurrency, per key (`base` = shared.flow.redis_key("conc", workflow, key value)):
- `<base>:holders`  sorted set of the run ids holding a place (score: when they got it);
- `<base>:waiting`  sorted set of the run ids waiting for one (score: when the run was accepted,
                    from its time-ordered id), so a run redelivered after a crash takes its
                    place in line again instead of joining the end;
- `<base>:jobs`     hash run id -> the Redis commands that enqueue its next delivery;
- `automateos:flow:hold:<run id>` -> {"base", "limit"}: which key a run holds, so whoever ends
  the run (its own delivery, or the recovery sweep for a lost one) gives the place back.

A waiting run's enqueue commands are built by `RunEnqueuer.commands` when it starts waiting and
replayed by the script that gives it a place, so handing the place over and queueing the run
are one atomic step: a crash between the two cannot leak a place or lose the run.

Throttle, per key: `<throttle base>` is a list of the last `limit` reserved start times; a new
run reserves the earliest time at which the window of `period_s` before it holds fewer than
`limit` starts, and never earlier than the previous reservation (arrival order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis

from shared.flow import REDIS_PREFIX
from shared.flow_debounce import TAKE

HOLD_PREFIX = REDIS_PREFIX + "hold:"

# Replays an encoded command list (encode_commands) and hands free places to waiting runs.
_COMMON = (
    """
local HOLD = '"""
    + HOLD_PREFIX
    + """'
local function run_commands(blob)
  local pos = 1
  local function num()
    local nl = string.find(blob, '\\n', pos, true)
    local n = tonumber(string.sub(blob, pos, nl - 1))
    pos = nl + 1
    return n
  end
  local count = num()
  for _ = 1, count do
    local nargs = num()
    local args = {}
    for i = 1, nargs do
      local len = num()
      args[i] = string.sub(blob, pos, pos + len - 1)
      pos = pos + len
    end
    redis.call(unpack(args))
  end
end
local function promote(base, limit, now)
  local moved = 0
  for _ = 1, limit do
    if redis.call('ZCARD', base .. ':holders') >= limit then break end
    local head = redis.call('ZPOPMIN', base .. ':waiting')
    if #head == 0 then break end
    local run = head[1]
    local blob = redis.call('HGET', base .. ':jobs', run)
    redis.call('HDEL', base .. ':jobs', run)
    if blob then
      redis.call('ZADD', base .. ':holders', now, run)
      redis.call('SET', HOLD .. run, cjson.encode({base = base, limit = limit}))
      run_commands(blob)
      moved = moved + 1
    end
  end
  return moved
end
"""
)

# KEYS: base, hold key of the run. ARGV: run id, limit, now, commands blob ("" = only ask),
# arrival (the run's acceptance in ms: its place in line).
# Returns -1 when the run holds a place (now or already: a redelivery after a crash), else how
# many runs of the key wait ahead of it (-2: full and not queued, because no blob was given).
ADMIT = (
    _COMMON
    + """
local base, run, limit, now = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('ZSCORE', base .. ':holders', run) then return -1 end
if redis.call('ZCARD', base .. ':waiting') > 0 then promote(base, limit, now) end
local waiting = redis.call('ZSCORE', base .. ':waiting', run)
if redis.call('ZCARD', base .. ':waiting') == 0
   and redis.call('ZCARD', base .. ':holders') < limit then
  redis.call('ZADD', base .. ':holders', now, run)
  redis.call('SET', KEYS[2], cjson.encode({base = base, limit = limit}))
  return -1
end
if not waiting then
  if ARGV[4] == '' then return -2 end
  redis.call('ZADD', base .. ':waiting', ARGV[5], run)
  redis.call('HSET', base .. ':jobs', run, ARGV[4])
end
return redis.call('ZRANK', base .. ':waiting', run)
"""
)

# KEYS: hold key of the run. ARGV: run id, now. Gives the run's place back (if it holds one)
# and hands free places to the runs waiting longest; returns how many it queued.
RELEASE = (
    _COMMON
    + """
local held = redis.call('GET', KEYS[1])
if not held then return 0 end
redis.call('DEL', KEYS[1])
local hold = cjson.decode(held)
redis.call('ZREM', hold.base .. ':holders', ARGV[1])
return promote(hold.base, tonumber(hold.limit), ARGV[2])
"""
)

# KEYS: throttle key. ARGV: limit, period_s, now (seconds). Returns the reserved start time.
THROTTLE = """
local limit, period, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = now
if redis.call('LLEN', KEYS[1]) >= limit then
  local oldest = tonumber(redis.call('LINDEX', KEYS[1], -limit))
  if oldest + period > start then start = oldest + period end
end
local last = redis.call('LINDEX', KEYS[1], -1)
if last and tonumber(last) > start then start = tonumber(last) end
redis.call('RPUSH', KEYS[1], string.format('%.6f', start))
redis.call('LTRIM', KEYS[1], -limit, -1)
redis.call('PEXPIRE', KEYS[1], math.ceil((start - now + period) * 1000) + 1000)
return string.format('%.6f', start)
"""


def _arg(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, int | float):
        return repr(value).encode()
    raise TypeError(f"cannot send {type(value).__name__} to Redis")


def encode_commands(commands: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]) -> bytes:
    """Commands (as `RunEnqueuer.commands` gives them) in the length-prefixed form the scripts
    replay: `<count>\\n` then per command `<nargs>\\n` and per argument `<len>\\n<bytes>`."""
    out = [b"%d\n" % len(commands)]
    for args, _options in commands:
        out.append(b"%d\n" % len(args))
        for arg in args:
            data = _arg(arg)
            out.append(b"%d\n" % len(data))
            out.append(data)
    return b"".join(out)


class FlowScripts:
    """The scripts registered on one async client (EVALSHA, loaded on first use)."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.admit = client.register_script(ADMIT)
        self.release = client.register_script(RELEASE)
        self.throttle = client.register_script(THROTTLE)
        self.take = client.register_script(TAKE)
