"""The measurements, each on any system that offers the same small interface.

A system (bench.ours.Ours, bench.peer.N8n) gives webhook URLs, a round `marker()`, and reads
its own database: `finished(workload, marker)` and `queue_waits_ms(workload, marker)`. The load
comes from bench/ingest.py's generators (wrk for a timed round, its asyncio client for exactly N
requests), so both systems face the very same client.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import TYPE_CHECKING, Any, Protocol

from bench import cpu
from bench.ingest import Result, run_python, run_wrk
from bench.workloads import Workload

if TYPE_CHECKING:
    from bench.ours import Ours


class System(Protocol):
    name: str

    def hook_url(self, workload: str) -> str: ...
    def marker(self) -> Any: ...
    def finished(self, workload: str, since: Any) -> tuple[int, int, float | None]: ...
    def queue_waits_ms(self, workload: str, since: Any) -> list[float]: ...
    def idle_latency_ms(self, workload: str, deadline_s: float = 15) -> float: ...
    def cpu_groups(self) -> dict[str, list[int]]: ...


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank, None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def drive(client: str, url: str, connections: int, duration: float) -> Result:
    """A timed load round against `url` with the shared generator (wrk or asyncio)."""
    args = argparse.Namespace(
        client=client,
        connections=connections,
        threads=2 if connections > 64 else 1,
        duration=max(1, round(duration)) if client == "wrk" else duration,
    )
    runner = run_wrk if client == "wrk" else run_python
    return runner(url, {}, False, args)


def send_exactly(url: str, total: int, connections: int, deadline_s: float) -> Result:
    """Exactly `total` webhooks over `connections` keep-alive connections (asyncio client)."""
    args = argparse.Namespace(connections=connections, duration=deadline_s)
    return run_python(url, {}, False, args, total=total)


def ingest_round(client: str, url: str, connections: int, duration: float) -> dict[str, Any]:
    """One timed ingest round; the caller adds what the system stored."""
    result = drive(client, url, connections, duration)
    return {
        "rps": result.rps,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "requests": result.requests,
        "non_2xx": result.non_2xx,
        "errors": result.errors,
    }


def throughput_round(system: System, workload: Workload, runs: int) -> dict[str, Any]:
    """Send `runs` webhooks, then wait until the system's database shows them all finished.

    runs/s = finished / (last finish - first send), so a system that accepts fast but runs
    slowly is measured by when the work is done, not by when it was accepted. CPU is read from
    /proc for every process of the system's `cpu_groups()` before the first send and once the
    runs show finished. A poll of PostgreSQL (ours, n8n queue mode) is one short connection whose
    server side lands in the system's CPU, a few ms every 0.25 s: well under 0.1 ms per run.
    """
    round_ = _Round(system, workload)
    sent = send_exactly(system.hook_url(workload.name), runs, workload.connections, 120)
    accepted = sent.requests - sent.non_2xx
    return {
        "sent": runs,
        "errors": sent.errors + sent.non_2xx,
        "send_rps": sent.rps,
        "send_p50_ms": sent.p50_ms,
        "send_p99_ms": sent.p99_ms,
        **round_.finish(accepted),
    }


def direct_round(ours: Ours, workload: Workload, runs: int) -> dict[str, Any]:
    """`runs` jobs put straight on our queue (Ours.enqueue_direct), timed until the database
    shows them all finished: the worker alone, fed as bench.rq_baseline feeds bare RQ. The clock
    starts before the enqueue, so its pipelined writes count against the worker."""
    round_ = _Round(ours, workload)
    ours.enqueue_direct(workload.name, runs)
    return {"sent": runs, **round_.finish(runs)}


class _Round:
    """One throughput round's clock and CPU reading, from before its first run is sent."""

    def __init__(self, system: System, workload: Workload) -> None:
        self.system = system
        self.workload = workload
        self.since = system.marker()
        self.groups = system.cpu_groups()
        self.before = cpu.read(self.groups)
        self.started = time.time()

    def finish(self, accepted: int) -> dict[str, Any]:
        """Wait (up to the workload's deadline) until `accepted` runs show finished; the
        round's figures."""
        name = self.workload.name
        end = time.monotonic() + self.workload.deadline_s
        done, ok, last = 0, 0, None
        while time.monotonic() < end:
            done, ok, last = self.system.finished(name, self.since)
            if done >= accepted:
                break
            time.sleep(0.25)
        spent = cpu.spent(self.before, cpu.read(self.groups))
        makespan = (last - self.started) if last else None
        waits = self.system.queue_waits_ms(name, self.since)
        return {
            "accepted": accepted,
            "finished": done,
            "succeeded": ok,
            "missing": accepted - done,
            "makespan_s": makespan,
            "runs_per_s": done / makespan if makespan else 0.0,
            "queue_wait_p50_ms": percentile(waits, 0.50),
            "queue_wait_p99_ms": percentile(waits, 0.99),
            # CPU from the first send until every run showed finished, per finished run:
            # "system" is every process of the system, "worker" those that run the workflows.
            "cpu_s": spent,
            **{f"cpu_ms_per_run_{k}": ms for k, ms in cpu.per_run_ms(spent, done).items()},
        }


def idle_latencies(systems: list[System], workload: str, samples: int) -> dict[str, list[float]]:
    """202 → finished, one webhook at a time on an idle system, systems taking turns."""
    out: dict[str, list[float]] = {s.name: [] for s in systems}
    for _ in range(3):  # warm the path (connections, caches) without recording
        for system in systems:
            system.idle_latency_ms(workload)
    for index in range(samples):
        order = systems if index % 2 == 0 else list(reversed(systems))
        for system in order:
            out[system.name].append(system.idle_latency_ms(workload))
            time.sleep(0.1)
    return out


def median_ratio(ours: list[float], theirs: list[float]) -> float | None:
    """Median of per-round ratios ours/theirs (rounds paired in order)."""
    ratios = [a / b for a, b in zip(ours, theirs, strict=False) if a and b]
    return statistics.median(ratios) if ratios else None
