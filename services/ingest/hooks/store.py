"""Storing an accepted delivery's job in Redis, with its dedupe claim when it has a key.

Without an idempotency key, the job is one MULTI. With one, the claim and the job are one
script (`CLAIM_AND_STORE`): the key is read, and only if nobody holds it are the job's commands
run and the key set to this run for the whole dedupe window. Nothing a retry can see sits
between the two. A claim taken first and a job stored after it would leave, when Redis dies
between them, a key naming a run that was never stored: the sender's retry would be answered
202 with that run, and the delivery would be lost (tests/chaos/test_redis.py caught it).

A 202 goes out only after Redis acknowledged the write. What this does not guarantee: a job
command that fails half way through the script (an ACL refusing RPUSH, say) leaves what ran
before it, as a failed EXEC would; the key is set last, so the sender's retry is not blocked.
"""

from __future__ import annotations

from redis.exceptions import RedisError

from services.ingest.leanredis import LeanRedis, bulk, encode
from shared.queue import RunEnqueuer, RunJob
from shared.resp import RUN_COMMANDS

# KEYS: the dedupe key. ARGV: run id, the dedupe window in seconds, then the job's commands
# (shared.resp.arguments). Returns the run that holds the key (whose job is stored), or nil
# when this run took the key and its job was stored.
CLAIM_AND_STORE = (
    RUN_COMMANDS
    + """
local holder = redis.call('GET', KEYS[1])
if holder then return holder end
run_commands(3)
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
)
_EVAL_CLAIM_AND_STORE = bulk(b"EVAL") + bulk(CLAIM_AND_STORE.encode()) + bulk(b"1")


class QueueUnavailable(Exception):
    """Redis did not confirm that it stored the job."""


class RunStore:
    """Writes accepted deliveries to Redis: the RQ job, atomically with its dedupe claim."""

    def __init__(self, redis: LeanRedis, enqueuer: RunEnqueuer, dedupe_ttl_s: int) -> None:
        self._redis = redis
        self._enqueuer = enqueuer
        self._dedupe_ttl = bulk(encode(dedupe_ttl_s))

    async def store(self, job: RunJob, dedupe_key: str | None) -> tuple[str, bool]:
        """Store `job` unless `dedupe_key` is held: (the run id stored, whether it was held).

        Raises QueueUnavailable when Redis fails or times out (the key is then not held by
        this run, so the sender's retry can succeed). Raises ValueError/RecursionError when the
        job cannot be serialised, before anything is written.
        """
        run_id = job["run_id"]
        try:
            if dedupe_key is None:
                packed, count = self._enqueuer.packed(job)
                await self._redis.transaction((packed,), count)
                return run_id, False
            commands, count = self._enqueuer.packed_arguments(job)
            command = b"".join(
                (
                    b"*%d\r\n" % (6 + count),
                    _EVAL_CLAIM_AND_STORE,
                    bulk(dedupe_key.encode()),
                    bulk(run_id.encode()),
                    self._dedupe_ttl,
                    commands,
                )
            )
            (holder,) = await self._redis.execute(command, 1)
        except (RedisError, OSError, TimeoutError) as exc:
            raise QueueUnavailable(f"{type(exc).__name__}: {exc}") from exc
        # Our own run id back: a re-sent script (leanredis retries a stale connection) found
        # the key this run took the first time, with its job.
        if holder is None or holder == run_id.encode():
            return run_id, False
        return (holder.decode() if isinstance(holder, bytes) else str(holder)), True
