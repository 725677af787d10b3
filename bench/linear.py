"""Does a plain workflow pay for features it does not use? `python -m bench.linear`.

Issues 16 and 17 ask that a linear workflow (no `after`, no `for_each`) without flow-control
fields costs no more CPU per run than before the graph scheduler and flow control existed.
"Before" is a commit (`--before`, default: engine v3 as it was merged, without language v2 or
flow control), checked out into a temporary git worktree; its worker and this tree's worker
take turns on the same PostgreSQL and Redis, the order reversed every round, each on a fresh
worker process with the same shape, each given the same burst: CPU-light (bench.worker's
`transform` + `filter`), or I/O-bound (`--workload io-bound`, its call to a 200 ms API; the
same comparison then measures a change to the HTTP path against any commit). The ratio of the
medians is the figure: CPU per run of the worker's processes (from /proc, bench/cpu.py) and
runs/s.

The database carries this tree's schema (migrations only add columns the old code leaves to
their defaults). Bounded: fixed run counts and rounds, every wait has a deadline, every process
is stopped by its pid, the worktree is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import cpu, slow_api
from bench.worker import CPU_LIGHT, Bench, io_bound
from bench.worker_cost import ROOT, context
from scripts.localinfra import stop_process
from tests.fixtures.servers import running_infra
from tests.fixtures.stack import ServiceProcess, start_service, wait_ready
from tests.services.worker.harness import running_api, worker_env

# The engine branch as merged (81d3463^2): the asyncio consumer, before graphs and flow control.
DEFAULT_BEFORE = "83486a6"


@contextmanager
def checkout(commit: str) -> Iterator[Path]:
    """`commit` in a temporary worktree of this repository, removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="bench-before-"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--quiet", str(folder), commit],
        cwd=ROOT,
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=ROOT, check=False)


def start(bench: Bench, tree: Path, processes: int, concurrency: int) -> tuple[ServiceProcess, str]:
    """A worker started from `tree` (its own code first on the path), ready, and its queue."""
    env = worker_env(bench.database_url, bench.redis_url, bench.workdir / uuid.uuid4().hex)
    env["PYTHONPATH"] = str(tree)
    logs = bench.workdir / f"logs-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True)
    args = ["--processes", str(processes), "--concurrency", str(concurrency)]
    port = int(env["AUTOMATEOS_METRICS_PORT"])
    service = start_service("worker", args, port, env, logs, tree)
    wait_ready(service)
    return service, env["AUTOMATEOS_QUEUE_NAME"]


async def burst(bench: Bench, tree: Path, args: argparse.Namespace) -> dict[str, float]:
    """One fresh worker from `tree`, one burst: runs/s and worker CPU ms per run."""
    service, queue = start(bench, tree, args.processes, args.concurrency)
    try:
        # Start-up (imports, connections) is not a run's cost.
        await asyncio.to_thread(cpu.wait_quiet, [service.proc.pid])
        groups = {"worker": [service.proc.pid]}
        before = cpu.read(groups)
        nodes = CPU_LIGHT if args.workload == "cpu-light" else io_bound(bench.slow_url)
        seconds = await bench.burst(queue, nodes, args.runs)
        spent = cpu.spent(before, cpu.read(groups))
    finally:
        stop_process(service.proc, timeout=30)
    return {"runs_per_s": args.runs / seconds, "worker_ms": spent["worker"] * 1000 / args.runs}


async def measure(args: argparse.Namespace, bench: Bench, before_tree: Path) -> dict[str, Any]:
    trees = {"before": before_tree, "now": ROOT}
    rounds: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
    try:
        for index in range(args.rounds):
            order = ["before", "now"] if index % 2 == 0 else ["now", "before"]
            for side in order:
                figures = await burst(bench, trees[side], args)
                rounds[side].append(figures)
                print(
                    f"round {index + 1} {side:<6} {figures['runs_per_s']:8.1f} runs/s "
                    f"{figures['worker_ms']:6.2f} ms CPU per run",
                    flush=True,
                )
    finally:
        await bench.close()
    medians = {
        side: {key: statistics.median(r[key] for r in found) for key in found[0]}
        for side, found in rounds.items()
    }
    return {"rounds": rounds, "medians": medians}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.linear")
    parser.add_argument("--before", default=DEFAULT_BEFORE, help="the commit to compare with")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument(
        "--workload",
        choices=("cpu-light", "io-bound"),
        default="cpu-light",
        help="bench.worker's transform + filter, or its call to a 200 ms API",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    args = parser.parse_args()
    meta = context()
    print(f"{meta['date']} at {meta['commit']} against {args.before}")
    with (
        checkout(args.before) as before_tree,
        tempfile.TemporaryDirectory() as workdir,
        running_infra() as infra,
        running_api() as api,
        slow_api.serving() as slow_url,
    ):
        found = asyncio.run(measure(args, Bench(infra, api, Path(workdir), slow_url), before_tree))
    before, now = found["medians"]["before"], found["medians"]["now"]
    cpu_ratio = now["worker_ms"] / before["worker_ms"]
    rate_ratio = now["runs_per_s"] / before["runs_per_s"]
    print(
        f"\nlinear {args.workload} run, median of {args.rounds} rounds, "
        f"{args.processes} process(es) x {args.concurrency}:\n"
        f"  worker CPU per run: {before['worker_ms']:.2f} ms before, {now['worker_ms']:.2f} ms "
        f"now ({cpu_ratio:.2f}x; target <= 1.0x plus noise)\n"
        f"  runs/s: {before['runs_per_s']:.1f} before, {now['runs_per_s']:.1f} now "
        f"({rate_ratio:.2f}x)"
    )
    if args.json is not None:
        meta["loadavg_at_end"] = os.getloadavg()[0]
        payload = {"meta": meta, "before": args.before, **found}
        args.json.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
