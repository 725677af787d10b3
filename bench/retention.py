"""Run retention under load: `python -m bench.retention [--runs 1000000]` (`make bench-retention`).

Starts an embedded PostgreSQL and Redis, seeds `--runs` finished runs (one step each) that are
older than the retention, then drives the worker's write pattern (insert a run `running`,
insert its steps, mark it finished: three statements, like a worker's claim and final write)
from `--writers` concurrent connections, in alternating rounds without and with the pruner
deleting the old history. It prints runs/s and p50/p99 per round and the ratios, and how fast
the pruner deleted.

Ingest is not measured here: it never reads or writes PostgreSQL, and the pruner's only Redis
traffic is one lease renewal per workflow processed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import create_async_engine

from scripts.localinfra import PostgresServer, RedisServer
from services.worker.retention import RetentionPruner
from shared.db.migrate import upgrade
from shared.ids import uuid7, uuid7_for


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def seed(url: str, runs: int, workflows: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """`runs` finished runs 30 days old over `workflows` workflows; returns (workflow, owner)."""
    conn = await asyncpg.connect(_plain(url))
    try:
        owner = uuid.uuid4()
        await conn.execute(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, 'x', now())",
            owner,
            f"bench-{owner.hex[:8]}@example.com",
        )
        ids = [uuid.uuid4() for _ in range(workflows)]
        for workflow_id in ids:
            await conn.execute(
                "INSERT INTO workflows (id, owner_id, name, description, active, version, nodes,"
                " trigger, webhook_token_hash, webhook_nonce, created_at, updated_at) VALUES"
                " ($1, $2, 'bench', '', true, 1, '[]', '{}', $3, 'n', now(), now())",
                workflow_id,
                owner,
                uuid.uuid4().hex + uuid.uuid4().hex,
            )
        old = datetime.now(UTC) - timedelta(days=30)
        base_ms = int(old.timestamp() * 1000)
        batch = 50_000
        for start in range(0, runs, batch):
            rows = []
            steps = []
            for i in range(start, min(runs, start + batch)):
                run_id = uuid7_for(base_ms + i, i.to_bytes(8, "big"))
                accepted = old + timedelta(milliseconds=i)
                rows.append(
                    (run_id, ids[i % workflows], owner, 1, "succeeded", "{}", 1, accepted, accepted)
                )
                steps.append((run_id, 0, "n", "log", "succeeded", '{"message": "x"}', 1))
            await conn.copy_records_to_table(
                "workflow_runs",
                records=rows,
                columns=[
                    "id",
                    "workflow_id",
                    "owner_id",
                    "workflow_version",
                    "status",
                    "trigger",
                    "attempt",
                    "accepted_at",
                    "finished_at",
                ],
            )
            await conn.copy_records_to_table(
                "run_steps",
                records=steps,
                columns=["run_id", "position", "node_id", "type", "status", "output", "attempt"],
            )
        await conn.execute("ANALYZE")
        return [(workflow_id, owner) for workflow_id in ids]
    finally:
        await conn.close()


async def write_load(
    url: str, targets: list[tuple[uuid.UUID, uuid.UUID]], writers: int, seconds: float
) -> list[float]:
    """The worker's writes for `seconds` from `writers` connections; latency of each run (s)."""
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def writer(index: int) -> None:
        conn = await asyncpg.connect(_plain(url))
        try:
            while time.monotonic() < end:
                workflow_id, owner = targets[(index + len(latencies)) % len(targets)]
                run_id = uuid7()
                clock = time.perf_counter()
                await conn.execute(
                    "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version,"
                    " status, trigger, attempt, accepted_at, started_at)"
                    " VALUES ($1, $2, $3, 1, 'running', '{}', 1, now(), now())",
                    run_id,
                    workflow_id,
                    owner,
                )
                await conn.execute(
                    "INSERT INTO run_steps (run_id, position, node_id, type, status, attempt,"
                    " output) VALUES ($1, 0, 'n', 'log', 'succeeded', 1, '{}')",
                    run_id,
                )
                await conn.execute(
                    "UPDATE workflow_runs SET status = 'succeeded', finished_at = now()"
                    " WHERE id = $1 AND status = 'running'",
                    run_id,
                )
                latencies.append(time.perf_counter() - clock)
        finally:
            await conn.close()

    await asyncio.gather(*(writer(i) for i in range(writers)))
    return latencies


def _summary(latencies: list[float], seconds: float) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    return len(ordered) / seconds, statistics.median(ordered) * 1000, p99 * 1000


async def main_async(args: argparse.Namespace, url: str, redis_url: str) -> None:
    clock = time.perf_counter()
    targets = await seed(url, args.runs, args.workflows)
    took = time.perf_counter() - clock
    print(f"seeded {args.runs:,} runs over {args.workflows} workflows in {took:.1f}s")
    engine = create_async_engine(url, pool_size=2)
    client = aioredis.Redis.from_url(redis_url)
    pruner = RetentionPruner(
        engine,
        client,
        "bench:retention",
        days=14,
        max_runs=10_000_000,
        interval_s=60,
        batch=args.batch,
        rest_ratio=args.rest_ratio,
    )
    rounds: list[tuple[str, tuple[float, float, float]]] = []
    pruned = 0
    prune_seconds = 0.0
    try:
        for round_no in range(args.rounds):
            quiet = await write_load(url, targets, args.writers, args.seconds)
            rounds.append(("without pruning", _summary(quiet, args.seconds)))
            started = time.perf_counter()
            task = asyncio.create_task(pruner.prune_once())
            busy = await write_load(url, targets, args.writers, args.seconds)
            rounds.append(("while pruning", _summary(busy, args.seconds)))
            stats = await task
            prune_seconds += time.perf_counter() - started
            pruned += stats.by_age
            print(f"round {round_no + 1}: pruner deleted {stats.by_age:,} runs")
            if stats.by_age == 0 and round_no > 0:
                break
    finally:
        await client.aclose()
        await engine.dispose()
    for label, (rate, p50, p99) in rounds:
        print(f"  {label:16} {rate:8.0f} runs/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")
    quiet_rates = [r[1] for r in rounds if r[0] == "without pruning"]
    busy_rates = [r[1] for r in rounds if r[0] == "while pruning"]
    q_rate = statistics.median(r[0] for r in quiet_rates)
    b_rate = statistics.median(r[0] for r in busy_rates)
    q_p99 = statistics.median(r[2] for r in quiet_rates)
    b_p99 = statistics.median(r[2] for r in busy_rates)
    print(
        f"medians: runs/s {b_rate / q_rate:.2f}x while pruning, p99 {b_p99 / q_p99:.2f}x; "
        f"pruned {pruned:,} runs at {pruned / max(prune_seconds, 1e-9):,.0f} runs/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--workflows", type=int, default=10)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rest-ratio", type=float, default=2.0)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="automateos-bench-retention-"))
    base.chmod(0o755)
    postgres = PostgresServer(base / "pg", durable=False)
    redis_server = RedisServer(base / "redis", durable=False)
    try:
        postgres.start()
        redis_server.start()
        url = postgres.create_database("bench")
        upgrade(url)
        asyncio.run(main_async(args, url, redis_server.url))
    finally:
        redis_server.stop()
        postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("AUTOMATEOS_ENV", "local")
    main()
