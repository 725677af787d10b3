"""The wait and callback protocol of parked runs, in one place for every service.

A parked run (a long `delay`, a `wait_for_callback`; later, a child run) is `waiting` in
PostgreSQL with `resume_at`: that row is the only record of when it resumes. The worker
supervisor's due-run poller (services/worker/dueruns.py, a leased singleton) enqueues the
continuation of every run whose `resume_at` has passed, through the one enqueue API.

A `wait_for_callback` run also has a callback key in Redis (`shared.hooks.callback_key`) whose
value moves through: absent → "W:<step position>" (parked) → "B:<body>" (a POST came) → "C"
(taken by the resumed run, timed out, or the run was cancelled). A POST that finds "W:" also
adds the run to the queue's wake set, so the poller resumes it within a second instead of at its
timeout; a POST that comes before the run parks is kept, and the park finds it and resumes at
once. A POST that finds "B:" or "C" is answered 409. Each side changes the key with one atomic
script; every writer uses `CALLBACK_TTL_S`, the key's one lifetime.
"""

from __future__ import annotations

# Longest wait (30 days) plus slack: a callback key outlives any run that could still read it.
CALLBACK_TTL_S = 31 * 24 * 3600


def wake_key(queue_name: str) -> str:
    """Sorted set of run ids whose callback came while parked (score: when), per queue."""
    return f"automateos:wake:{queue_name}"


# Ingest delivers a callback. KEYS: the callback key, the wake set. ARGV: body, now, TTL.
# Returns 2 (parked run woken), 1 (kept for a run not parked yet), 0 (already answered).
DELIVER = """
local state = redis.call('GET', KEYS[1])
if not state then
  redis.call('SET', KEYS[1], 'B:' .. ARGV[1], 'EX', ARGV[3])
  return 1
end
if string.sub(state, 1, 2) == 'W:' then
  redis.call('SET', KEYS[1], 'B:' .. ARGV[1], 'EX', ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
  return 2
end
return 0
"""

# The engine parks on a callback. KEYS: the callback key. ARGV: step position, TTL.
# Returns 1 when the run now waits for it, 0 when a body already came (resume at once).
PARK = """
if redis.call('SET', KEYS[1], 'W:' .. ARGV[1], 'NX', 'EX', ARGV[2]) then return 1 end
local state = redis.call('GET', KEYS[1])
if state and string.sub(state, 1, 2) == 'B:' then return 0 end
return 1
"""

# The engine takes the callback: returns the body if one came, and closes the key either way.
TAKE = """
local state = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], 'C', 'EX', ARGV[1])
if state and string.sub(state, 1, 2) == 'B:' then return string.sub(state, 3) end
return false
"""

CLOSED = "C"
