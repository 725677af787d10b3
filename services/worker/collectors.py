"""Gauges the supervisor computes at scrape time: queue depth, heartbeats, per-process resources.

They describe the present, so they are read when Prometheus asks instead of being written by
the worker processes (which may be stuck or dead: exactly what these gauges must show).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)

from shared.flow import priority_queues
from shared.queue import queue_key

log = logging.getLogger(__name__)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _registry_keys(queue_name: str) -> dict[str, str]:
    # Key names come from RQ itself, so they follow RQ's layout (and RQ_KEY_PREFIX).
    return {
        state: registry.key_template.format(queue_name)
        for state, registry in (
            ("started", StartedJobRegistry),
            ("failed", FailedJobRegistry),
            ("scheduled", ScheduledJobRegistry),
            ("deferred", DeferredJobRegistry),
        )
    }


class QueueCollector(Collector):
    """`automateos_queue_jobs{queue,state}` read from RQ's list and registries in one pipeline.

    One `queue` label per priority queue (`<name>`, `<name>:high`, `<name>:low`).
    """

    def __init__(self, client: redis.Redis, queue_name: str) -> None:
        self.client = client
        self.queue_name = queue_name
        self._queues = {name: _registry_keys(name) for name in priority_queues(queue_name)}

    def collect(self) -> Iterable[Metric]:
        """Yield the queue gauge, or nothing when Redis does not answer (the scrape goes on)."""
        current = time.time()
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for name, registries in self._queues.items():
                    pipe.llen(queue_key(name))
                    for state, key in registries.items():
                        if state == "scheduled":
                            # Scored by when to run, not by expiry: every entry counts.
                            pipe.zcard(key)
                        else:
                            # Scored by expiry: entries past it are leftovers awaiting cleanup.
                            pipe.zcount(key, current, "+inf")
                counts = iter(pipe.execute())
        except redis.RedisError as exc:
            log.warning("queue metrics unavailable: %s", exc)
            return
        family = GaugeMetricFamily(
            "automateos_queue_jobs", "Jobs in the RQ queue by state.", labels=["queue", "state"]
        )
        for name, registries in self._queues.items():
            for state in ["queued", *registries]:
                family.add_metric([name, state], float(next(counts)))
        yield family


@dataclass(frozen=True)
class ProcessView:
    """What the supervisor knows about one worker slot at scrape time."""

    index: int
    pid: int | None
    heartbeat_age_s: float | None
    restarts: int


def process_stats(pid: int) -> tuple[float, int] | None:
    """(CPU seconds, resident bytes) of a live process from /proc, or None (gone, non-Linux)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return None
    # Fields after "pid (comm) "; comm may contain spaces, hence the last ")".
    fields = data[data.rfind(b")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return cpu, int(fields[21]) * _PAGE_SIZE


class WorkerProcessCollector(Collector):
    """Heartbeat age, memory, CPU and restarts per worker process (label: its slot index)."""

    def __init__(self, views: Callable[[], Sequence[ProcessView]]) -> None:
        self.views = views

    def collect(self) -> Iterable[Metric]:
        """Yield one sample per worker slot for each family."""
        age = GaugeMetricFamily(
            "automateos_worker_heartbeat_age_seconds",
            "Seconds since the worker process last came round its queue loop with Redis "
            "answering (or since it was started, before its first heartbeat).",
            labels=["worker"],
        )
        memory = GaugeMetricFamily(
            "automateos_worker_process_resident_memory_bytes",
            "Resident memory of the worker process.",
            labels=["worker"],
        )
        cpu = CounterMetricFamily(
            "automateos_worker_process_cpu_seconds",
            "User and system CPU time of the worker process (resets when it restarts).",
            labels=["worker"],
        )
        restarts = CounterMetricFamily(
            "automateos_worker_process_restarts",
            "Times the supervisor restarted the worker process after it exited.",
            labels=["worker"],
        )
        up = GaugeMetricFamily(
            "automateos_worker_process_up", "1 while the worker process runs.", labels=["worker"]
        )
        for view in self.views():
            label = [str(view.index)]
            if view.heartbeat_age_s is not None:
                age.add_metric(label, view.heartbeat_age_s)
            restarts.add_metric(label, float(view.restarts))
            stats = process_stats(view.pid) if view.pid is not None else None
            up.add_metric(label, 1.0 if stats is not None else 0.0)
            if stats is not None:
                cpu.add_metric(label, stats[0])
                memory.add_metric(label, float(stats[1]))
        yield from (age, memory, cpu, restarts, up)
