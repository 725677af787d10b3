"""Wake parked runs: move due continuation jobs from RQ's scheduled registry onto the queue.

Parked runs (a long `delay`, a `wait_for_callback`) wait as jobs in RQ's scheduled registry.
RQ's own scheduler would run in a process forked from a worker, next to its event loop and
connection pools, and holds its lock for a minute after dying; we run RQ's enqueue step
(`RQScheduler.enqueue_scheduled_jobs`) on a thread of the supervisor every `interval`
seconds, under a lock of our own whose TTL is a few ticks. One supervisor per queue moves the
jobs; the others try the lock every tick, so one takes over within seconds of the active one
dying, and parked runs resume within about two seconds of their time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis
from rq.scheduler import RQScheduler
from rq.serializers import JSONSerializer

from shared.flow import priority_queues

log = logging.getLogger(__name__)

# Extend the lock only while we still hold it (a slow tick must not extend someone else's).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class WakeupThread:
    """Moves due scheduled jobs of one queue onto it, on a daemon thread."""

    def __init__(self, redis_url: str, queue_name: str, interval_s: int) -> None:
        self.interval_s = interval_s
        self.connection = redis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_timeout=5
        )
        # Every priority queue has its own scheduled registry (shared/flow.py).
        queues = priority_queues(queue_name)
        self.scheduler = RQScheduler(queues, connection=self.connection, serializer=JSONSerializer)
        self.scheduler.prepare_registries(queues)
        self.lock_key = f"automateos:wakeups:{queue_name}"
        self.lock_ttl_ms = max(3000, 3000 * interval_s)
        self.name = f"{socket.gethostname()}-{os.getpid()}"
        self.holding = False
        self._renew = self.connection.register_script(_RENEW)
        self._release = self.connection.register_script(_RELEASE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wakeups", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self._thread.start()

    def tick(self) -> None:
        """Keep or take the lock; while ours, enqueue every scheduled job that is due."""
        if self.holding:
            self.holding = bool(
                self._renew(keys=[self.lock_key], args=[self.name, self.lock_ttl_ms])
            )
        if not self.holding:
            self.holding = bool(
                self.connection.set(self.lock_key, self.name, nx=True, px=self.lock_ttl_ms)
            )
        if self.holding:
            self.scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except redis.RedisError as exc:
                # Redis away: parked runs wake late, never lost (they stay in the registry).
                self.holding = False
                log.warning("could not wake parked runs: %s", exc)
            except Exception:
                log.exception("wake-up tick failed")

    def stop(self) -> None:
        """Stop ticking and give the lock back, so another supervisor takes over at once."""
        self._stop.set()
        self._thread.join(5)
        try:
            if self.holding:
                self._release(keys=[self.lock_key], args=[self.name])
        except redis.RedisError:
            pass
        self.connection.close()
