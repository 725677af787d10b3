"""`make bench-worker`: the worker engine's figures, each against a baseline run in this script.

The "cost" stage prints runs/s beside CPU per run (the worker's processes, and the whole system
under it: worker, PostgreSQL, Redis), CPU-light and I/O-bound, and at 1, 2 and 4 processes;
`--stages cost --json F` is how BENCHMARKS.md's before/after figures are taken.

The machine is shared and noisy, so every figure that has a baseline is printed as a ratio
measured minutes apart in one process: the baseline is the same worker with `--concurrency 1`,
i.e. the v1 model (one run per process, waits included). Jobs go on the queue exactly as
ingest writes them (the queue contract's enqueuer), so only the worker is measured.

Bounded: fixed run counts, every wait has a deadline, every process is stopped by its pid;
everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bench import graph, slow_api
from bench.worker_cost import HEADER as COST_HEADER
from bench.worker_cost import Cost, context, cost_stage, results
from scripts.localinfra import stop_process
from shared.queue import RunEnqueuer, RunJob
from tests.fixtures.servers import Infra, running_infra
from tests.services.worker.harness import (
    LocalApi,
    create_user,
    create_workflow,
    run_job,
    running_api,
    start_worker,
    worker_env,
)

DEADLINE_S = 300.0


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""

    def line(self) -> str:
        ratio = f"{self.value / self.baseline:6.2f}x" if self.baseline else "       "
        base = f"{self.baseline:10.1f}" if self.baseline is not None else " " * 10
        return f"{self.name:<46} {self.value:10.1f} {base} {ratio}  {self.unit:<8} {self.target}"


class Bench:
    def __init__(
        self, infra: Infra, api: LocalApi, workdir: Path, slow_url: str | None = None
    ) -> None:
        self.infra = infra
        self.database_url = infra.database_url
        self.redis_url = infra.redis_url
        self.api = api
        # The I/O-bound workloads' 200 ms API. Served from a process of its own (bench.slow_api)
        # when given: the in-process test API shares the bench's GIL with its PostgreSQL polling,
        # and under 32 calls at once answered its 200 ms calls in 252 ms on average.
        self.slow_url = slow_url or api.url("/slow/bench?ms=200")
        self.workdir = workdir
        self.db: AsyncEngine = create_async_engine(self.database_url)
        self.redis = aioredis.Redis.from_url(self.redis_url)

    async def close(self) -> None:
        await self.db.dispose()
        await self.redis.aclose()

    def worker(self, processes: int, concurrency: int) -> tuple[Any, str]:
        env = worker_env(self.database_url, self.redis_url, self.workdir / uuid.uuid4().hex)
        service = start_worker(
            env, self.workdir / f"logs-{uuid.uuid4().hex[:6]}", processes, concurrency
        )
        return service, env["AUTOMATEOS_QUEUE_NAME"]

    async def enqueue(self, queue: str, jobs: list[RunJob]) -> None:
        enqueuer = RunEnqueuer(self.redis, queue, 900)
        for start in range(0, len(jobs), 200):
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in jobs[start : start + 200]:
                    enqueuer.add_to(pipe, job)
                await pipe.execute()

    async def finished(self, workflow_id: uuid.UUID) -> int:
        async with self.db.connect() as conn:
            count = await conn.scalar(
                text(
                    "SELECT count(*) FROM workflow_runs WHERE workflow_id = :w"
                    " AND status IN ('succeeded', 'failed', 'cancelled')"
                ),
                {"w": workflow_id},
            )
        return int(count or 0)

    async def burst(
        self,
        queue: str,
        nodes: list[dict[str, Any]],
        count: int,
        body: dict[str, Any] | None = None,
        flow: dict[str, Any] | None = None,
        keys: int = 1,
    ) -> float:
        """Enqueue `count` runs at once; seconds until the last is finished (all must succeed).

        With `flow`, every job carries those flow fields (docs/flow-control.md) and a body key
        `k` taking `keys` values in turn.
        """
        workflow = await create_workflow(self.db, await create_user(self.db), nodes)
        jobs = [run_job(workflow, {"n": n, "k": n % keys, **(body or {})}) for n in range(count)]
        if flow is not None:
            for job in jobs:
                job["flow"] = flow  # type: ignore[typeddict-item]
        started = time.perf_counter()
        await self.enqueue(queue, jobs)
        end = started + DEADLINE_S
        while time.perf_counter() < end:
            if await self.finished(workflow.id) >= count:
                elapsed = time.perf_counter() - started
                await self._all_succeeded(workflow.id, count)
                return elapsed
            await asyncio.sleep(0.02)
        raise AssertionError(f"{count} runs not finished within {DEADLINE_S}s")

    async def _all_succeeded(self, workflow_id: uuid.UUID, count: int) -> None:
        async with self.db.connect() as conn:
            ok = await conn.scalar(
                text(
                    "SELECT count(*) FROM workflow_runs WHERE workflow_id = :w"
                    " AND status = 'succeeded'"
                ),
                {"w": workflow_id},
            )
        if ok != count:
            raise AssertionError(f"only {ok} of {count} runs succeeded")

    async def park(self, queue: str, count: int) -> None:
        """`count` runs parked on a one-hour delay (they stay parked for the whole bench)."""
        nodes = [{"id": "later", "type": "delay", "params": {"seconds": 3600}}]
        workflow = await create_workflow(self.db, await create_user(self.db), nodes)
        await self.enqueue(queue, [run_job(workflow) for _ in range(count)])
        end = time.perf_counter() + DEADLINE_S
        while time.perf_counter() < end:
            async with self.db.connect() as conn:
                waiting = await conn.scalar(
                    text(
                        "SELECT count(*) FROM workflow_runs WHERE workflow_id = :w"
                        " AND status = 'waiting'"
                    ),
                    {"w": workflow.id},
                )
            if waiting == count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError("parked runs did not all park")


def io_bound(slow_url: str) -> list[dict[str, Any]]:
    return [
        {"id": "call", "type": "http_request", "params": {"url": slow_url}},
        {
            "id": "shape",
            "type": "transform",
            "params": {"values": {"s": "{{ steps.call.status }}"}},
        },
    ]


CPU_LIGHT: list[dict[str, Any]] = [
    {"id": "shape", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}},
    {
        "id": "keep",
        "type": "filter",
        "params": {"all": [{"left": "{{ steps.shape.n }}", "op": "gte", "right": 0}]},
    },
]
DELAYED: list[dict[str, Any]] = [
    {"id": "wait", "type": "delay", "params": {"seconds": 5}},
    {"id": "shape", "type": "transform", "params": {"values": {"done": True}}},
]


# One run per key value at a time (docs/flow-control.md): the bench's body key `k`.
KEYED: dict[str, Any] = {"concurrency": {"limit": 1, "key": "{{ trigger.body.k }}"}}


def worker_rss(service: Any) -> list[float]:
    """Resident MB of each worker process, from the supervisor's metrics."""
    body = httpx.get(f"{service.url}/metrics", timeout=10).text
    pattern = r'^automateos_worker_process_resident_memory_bytes\{worker="\d+"\} (\S+)$'
    return [float(v) / 2**20 for v in re.findall(pattern, body, re.MULTILINE)]


async def run(args: argparse.Namespace, bench: Bench) -> tuple[list[Figure], list[Cost]]:
    figures: list[Figure] = []
    costs: list[Cost] = []
    try:
        if "cost" in args.stages:
            print(f"\ncost: CPU per run from /proc (bench/worker_cost.py)\n{COST_HEADER}")
            costs = await cost_stage(bench, args)
        if "throughput" in args.stages:
            figures += await _io_and_cpu(bench, args)
        if "waits" in args.stages:
            figures += await _waits(bench, args)
        return figures, costs
    finally:
        await bench.close()


async def _io_and_cpu(bench: Bench, args: argparse.Namespace) -> list[Figure]:
    processes = args.processes
    v1, v1_queue = bench.worker(processes, 1)
    try:
        io_v1 = args.io_runs / await bench.burst(v1_queue, io_bound(bench.slow_url), args.io_runs)
        cpu_v1 = args.cpu_runs / await bench.burst(v1_queue, CPU_LIGHT, args.cpu_runs)
    finally:
        stop_process(v1.proc, timeout=30)
    v2, v2_queue = bench.worker(processes, args.concurrency)
    try:
        idle = worker_rss(v2)
        # Peak memory with every slot waiting: 2 s calls, twice the slots.
        slow = [
            {
                "id": "call",
                "type": "http_request",
                "params": {"url": bench.api.url("/slow/rss?ms=2000")},
            }
        ]
        workflow = await create_workflow(bench.db, await create_user(bench.db), slow)
        await bench.enqueue(
            v2_queue, [run_job(workflow) for _ in range(2 * processes * args.concurrency)]
        )
        await asyncio.sleep(1.5)
        peak = worker_rss(v2)
        await asyncio.sleep(5)
        io_v2 = args.io_runs / await bench.burst(v2_queue, io_bound(bench.slow_url), args.io_runs)
        cpu_v2 = args.cpu_runs / await bench.burst(v2_queue, CPU_LIGHT, args.cpu_runs)
    finally:
        stop_process(v2.proc, timeout=30)
    return [
        Figure(
            f"I/O-bound (200 ms API), {args.io_runs} runs",
            io_v2,
            "runs/s",
            io_v1,
            ">= 250/s, >= 25x",
        ),
        Figure(
            f"CPU-light (transform+filter), {args.cpu_runs} runs",
            cpu_v2,
            "runs/s",
            cpu_v1,
            ">= 0.9x",
        ),
        Figure(
            "worker RSS, all slots waiting (max process)",
            max(peak),
            "MB",
            max(idle),
            "<= 1.3x idle",
        ),
    ]


async def _waits(bench: Bench, args: argparse.Namespace) -> list[Figure]:
    service, queue = bench.worker(args.processes, args.concurrency)
    try:
        forty = await bench.burst(queue, DELAYED, 40)
        alone = args.cpu_runs / await bench.burst(queue, CPU_LIGHT, args.cpu_runs)
        keyed = args.keyed_runs / await bench.burst(
            queue, CPU_LIGHT, args.keyed_runs, KEYED, keys=args.keys
        )
        await bench.park(queue, args.parked)
        beside = args.cpu_runs / await bench.burst(queue, CPU_LIGHT, args.cpu_runs)
        graph_rows = await graph.rows(
            lambda nodes, count, body: bench.burst(queue, nodes, count, body),
            bench.api.url("/slow/bench-graph?ms=200"),
        )
    finally:
        stop_process(service.proc, timeout=30)
    return [
        Figure("40 x delay 5 s, until all done", forty, "s", None, "<= 6.5 s"),
        Figure(
            f"keyed (limit 1), {args.keyed_runs} runs / {args.keys} keys",
            keyed,
            "runs/s",
            alone,
            "",
        ),
        Figure(f"CPU-light beside {args.parked} parked runs", beside, "runs/s", alone, "~1.0x"),
        *(Figure(*row) for row in graph_rows),
    ]


STAGES = ("cost", "throughput", "waits")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker")
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--cost-rounds", type=int, default=2, help="bursts per cost figure")
    parser.add_argument("--scaling", type=int, nargs="*", default=[1, 2, 4], help="processes")
    parser.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--io-runs", type=int, default=300)
    parser.add_argument("--cpu-runs", type=int, default=2000)
    parser.add_argument("--parked", type=int, default=1000)
    parser.add_argument("--keyed-runs", type=int, default=1000)
    parser.add_argument("--keys", type=int, default=100)
    args = parser.parse_args()
    meta = context()
    print(f"{meta['date']} at {meta['commit']}; load average {meta['loadavg_at_start']:.1f}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp,
        running_infra() as infra,
        running_api() as api,
        slow_api.serving() as slow_url,
    ):
        bench = Bench(infra, api, Path(tmp), slow_url)
        figures, costs = asyncio.run(run(args, bench))
    if args.json is not None:
        args.json.write_text(json.dumps(results(costs, meta), indent=1) + "\n")
    if costs:
        print(f"\n{COST_HEADER}")
        for cost in costs:
            print(cost.line())
    if not figures:
        return
    print(f"\n{'figure':<46} {'v2':>10} {'baseline':>10} {'ratio':>7}  {'unit':<8} target")
    print("baseline: the same worker with --concurrency 1 (one run per process, as before v2)")
    for figure in figures:
        print(figure.line())


if __name__ == "__main__":
    main()
