"""Debounce: triggers with one key within `period_s` of each other fold into one run.

Per key, a hash `automateos:flow:deb:<workflow>:<key value>` holds the run the triggers fold
into (`run`), when its first trigger came (`first`), when it is due (`due`: `period_s` after
the last trigger, at most `max_wait_s` after the first) and the last trigger (`trigger`).

Ingest folds each trigger with `FOLD`: the first one of a key creates the run and, in the same
script, schedules its job for `due`; later ones only move `due` on and replace `trigger`, and
their answer names the run they joined. The worker, when the job comes, `TAKE`s the hash: not
due yet (a later trigger moved it on) → the job is scheduled again for `due`; due → the run
starts with the last trigger, and the key is closed (`taken`), so the next trigger starts a new
run. A redelivery of a taken run reads the same last trigger again.
"""

from __future__ import annotations

from shared.resp import RUN_COMMANDS

# KEYS: the debounce hash. ARGV: run id if a new run is needed, now, period_s, max_wait_s
# (0: none), trigger JSON, TTL ms, then the new run's job commands scheduled for now + period_s
# (shared.resp.arguments), run only when the run is created: the hash never names a run whose
# job was not stored. Returns {run id, 1 if created else 0, due}.
FOLD = (
    RUN_COMMANDS
    + """
local now, period, max_wait = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local run = redis.call('HGET', KEYS[1], 'run')
if run and not redis.call('HGET', KEYS[1], 'taken') then
  local due = now + period
  if max_wait > 0 then
    local cap = tonumber(redis.call('HGET', KEYS[1], 'first')) + max_wait
    if cap < due then due = cap end
  end
  redis.call('HSET', KEYS[1], 'due', string.format('%.6f', due), 'trigger', ARGV[5])
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {run, 0, string.format('%.6f', due)}
end
run_commands(7)
redis.call('DEL', KEYS[1])
local due = string.format('%.6f', now + period)
redis.call('HSET', KEYS[1], 'run', ARGV[1], 'first', ARGV[2], 'due', due, 'trigger', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return {ARGV[1], 1, due}
"""
)

# KEYS: the debounce hash. ARGV: run id, now. Returns {"wait", due} while not due,
# {"take", trigger JSON} when due (closing the key), {"gone"} when the hash is not this run's.
TAKE = """
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return {'gone'} end
local due = redis.call('HGET', KEYS[1], 'due')
if not redis.call('HGET', KEYS[1], 'taken') and tonumber(due) > tonumber(ARGV[2]) then
  return {'wait', due}
end
redis.call('HSET', KEYS[1], 'taken', '1')
return {'take', redis.call('HGET', KEYS[1], 'trigger')}
"""


def ttl_ms(period_s: float, max_wait_s: float | None) -> int:
    """How long a debounce hash lives: its longest wait, plus an hour for a late worker."""
    return int((max(period_s, max_wait_s or 0.0) + 3600) * 1000)
