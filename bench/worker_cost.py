"""What a run costs the worker: runs/s beside CPU per run, CPU-light and I/O-bound, and the same
at 1, 2 and 4 worker processes (`make bench-worker`, its "cost" stage).

CPU is read from /proc over process trees (bench/cpu.py): "worker" is the supervisor with its
worker and render processes; "system" adds PostgreSQL (postmaster and backends) and Redis. The
jobs go onto the queue straight from this script, so no HTTP service takes part; the 200 ms API
the I/O-bound runs call is a thread of this script and counts in neither.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import cpu
from scripts.localinfra import stop_process

if TYPE_CHECKING:
    from bench.worker import Bench

ROOT = Path(__file__).resolve().parents[1]
IDLE_S = 2.0


@dataclass(frozen=True)
class Cost:
    """One burst: how many runs, how fast, and the CPU each run cost."""

    workload: str
    processes: int
    concurrency: int
    runs: int
    seconds: float
    worker_ms: float | None
    system_ms: float | None
    # What the idle worker burns per second (polls, heartbeats): at low rates it is a large
    # part of a run's share, so it is printed to read the per-run figures by.
    idle_worker_ms_per_s: float | None = None

    @property
    def runs_per_s(self) -> float:
        return self.runs / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        worker = f"{self.worker_ms:8.2f}" if self.worker_ms is not None else "       —"
        system = f"{self.system_ms:8.2f}" if self.system_ms is not None else "       —"
        idle = self.idle_worker_ms_per_s
        return (
            f"{self.workload:<10} {self.processes:>5} {self.concurrency:>5} {self.runs:>6} "
            f"{self.runs_per_s:9.1f} {worker} {system} {idle if idle is not None else 0:10.1f}"
        )


HEADER = (
    f"{'workload':<10} {'procs':>5} {'conc':>5} {'runs':>6} {'runs/s':>9} "
    f"{'worker':>8} {'system':>8} {'idle ms/s':>10}   (CPU ms per run; idle worker CPU)"
)


def infra_pids(bench: Bench) -> list[int]:
    """PostgreSQL's postmaster (its backends are its children) and Redis, when we started them."""
    pids: list[int] = []
    for server in (bench.infra.postgres, bench.infra.redis):
        if server is not None and server.proc is not None:
            pids.append(server.proc.pid)
    return pids


async def measured_burst(
    bench: Bench,
    workload: str,
    nodes: list[dict[str, Any]],
    runs: int,
    processes: int,
    concurrency: int,
) -> Cost:
    """A fresh worker with `processes` x `concurrency`, one burst of `runs`, then stopped."""
    service, queue = bench.worker(processes, concurrency)
    try:
        # Start-up (imports, connections) is not a run's cost: let it settle before reading.
        await asyncio.to_thread(cpu.wait_quiet, [service.proc.pid])
        groups = {"worker": [service.proc.pid], "system": [service.proc.pid, *infra_pids(bench)]}
        idle_from = cpu.read(groups)
        await asyncio.sleep(IDLE_S)
        before = cpu.read(groups)
        idle = cpu.spent(idle_from, before)["worker"] * 1000 / IDLE_S
        seconds = await bench.burst(queue, nodes, runs)
        spent = cpu.spent(before, cpu.read(groups))
    finally:
        stop_process(service.proc, timeout=30)
    per_run = cpu.per_run_ms(spent, runs)
    return Cost(
        workload,
        processes,
        concurrency,
        runs,
        seconds,
        per_run["worker"],
        per_run["system"],
        idle,
    )


async def cost_stage(bench: Bench, args: argparse.Namespace) -> list[Cost]:
    """CPU-light and I/O-bound at the default shape, then CPU-light at each process count."""
    from bench.worker import CPU_LIGHT, io_bound

    costs: list[Cost] = []
    for _ in range(args.cost_rounds):
        for name, nodes, runs in (
            ("cpu-light", CPU_LIGHT, args.cpu_runs),
            ("io-bound", io_bound(bench.slow_url), args.io_runs),
        ):
            cost = await measured_burst(bench, name, nodes, runs, args.processes, args.concurrency)
            print(cost.line(), flush=True)
            costs.append(cost)
    for processes in args.scaling:
        cost = await measured_burst(
            bench, "cpu-light", CPU_LIGHT, args.cpu_runs, processes, args.concurrency
        )
        print(cost.line(), flush=True)
        costs.append(cost)
    return costs


def context() -> dict[str, Any]:
    """When, at which commit and on how busy a machine the figures were taken."""
    commit = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": commit or "?",
        "cores": os.cpu_count(),
        "loadavg_at_start": os.getloadavg()[0],
    }


def results(costs: list[Cost], meta: dict[str, Any]) -> dict[str, Any]:
    """The stage's raw figures, as written to JSON."""
    return {
        "meta": {**meta, "loadavg_at_end": os.getloadavg()[0]},
        "costs": [{**asdict(c), "runs_per_s": c.runs_per_s} for c in costs],
    }
