"""AutomateOS under the bench: the project's own fixtures start it, SQL reads the outcome.

PostgreSQL and Redis come from tests/fixtures/servers.py in durable mode (fsync and Redis's
append-only file on, as `make up` runs them); auth, workflows and ingest from
tests/fixtures/stack.py. The worker is started and stopped on its own, so ingest can be
measured alone and the worker at 1, 2 and 4 processes.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis

from bench import cpu, idle, workloads
from scripts.localinfra import stop_process
from shared.queue import RunEnqueuer, queue_key
from tests.conftest import ApiUser, register_user
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra, running_infra
from tests.fixtures.stack import ServiceProcess, Stack, running_stack, stack_env, start_service
from tests.fixtures.stack import wait_ready as wait_service_ready
from tests.services.worker.harness import Workflow, run_job

ROOT = Path(__file__).resolve().parents[1]
FINISHED = ("succeeded", "failed", "cancelled")


def worker_has_concurrency_flag() -> bool:
    """Engine v2 adds `--concurrency`; today's worker runs one job per process."""
    out = subprocess.run(
        [sys.executable, "-m", "services.worker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    ).stdout
    return "--concurrency" in out


class Ours:
    """The running stack, one bench user, one workflow per workload."""

    name = "AutomateOS"

    def __init__(self, infra: Infra, stack: Stack, log_dir: Path, slow_url: str) -> None:
        self.infra = infra
        self.stack = stack
        self.log_dir = log_dir
        self.db = Database(infra.database_url)
        self.redis = redis.Redis.from_url(infra.redis_url)
        self.worker: ServiceProcess | None = None
        self.worker_processes = 0
        self.concurrency_flag = worker_has_concurrency_flag()
        self.user: ApiUser = register_user(stack)
        self.workflows: dict[str, dict[str, Any]] = {}
        with self.user.client("workflows") as api:
            for name in ("ingest", *(w.name for w in workloads.WORKLOADS)):
                created = api.post(
                    "/workflows",
                    json={"name": f"bench {name}", "nodes": workloads.ours(name, slow_url)},
                )
                if created.status_code != 201:
                    raise RuntimeError(f"creating workflow {name}: {created.text}")
                self.workflows[name] = created.json()

    # --- processes ------------------------------------------------------------------------

    def start_worker(self, processes: int, concurrency: int | None = None) -> None:
        """(Re)start the worker supervisor with `processes` processes and wait until ready."""
        self.stop_worker()
        args = ["--processes", str(processes)]
        if concurrency and self.concurrency_flag:
            args += ["--concurrency", str(concurrency)]
        port = int(self.stack.env["AUTOMATEOS_METRICS_PORT"])
        self.worker = start_service("worker", args, port, self.stack.env, self.log_dir)
        wait_service_ready(self.worker, 60)
        cpu.wait_quiet([self.worker.proc.pid])
        self.worker_processes = processes

    def stop_worker(self) -> None:
        """Stop the worker by its pid (it drains its current jobs first)."""
        if self.worker is not None:
            stop_process(self.worker.proc, timeout=30)
            self.worker = None

    def pids(self) -> dict[str, tuple[int, bool]]:
        """label -> (pid, summed) of every process of the system, for the memory sampler."""
        out = {name: (svc.proc.pid, False) for name, svc in self.stack.services.items()}
        if self.worker is not None:
            out["worker"] = (self.worker.proc.pid, False)
        if self.infra.postgres is not None and self.infra.postgres.proc is not None:
            out["postgres"] = (self.infra.postgres.proc.pid, True)
        out["redis"] = (int(self.redis.info("server")["process_id"]), False)
        return out

    def cpu_groups(self) -> dict[str, list[int]]:
        """Process trees whose CPU a run costs: the worker's (supervisor, its worker and render
        processes), and the whole system's (every service, PostgreSQL, Redis and the worker)."""
        everything = [pid for pid, _ in self.pids().values()]
        return {"system": everything, "worker": [self.worker.proc.pid] if self.worker else []}

    # --- the queue --------------------------------------------------------------------------

    def queued(self) -> int:
        """Jobs waiting on the run queue."""
        return int(self.redis.llen(queue_key(self.stack.env["AUTOMATEOS_QUEUE_NAME"])))

    def discard_queue(self) -> None:
        """Drop what ingest-only rounds enqueued (no worker ran; no run record exists yet)."""
        self.redis.delete(queue_key(self.stack.env["AUTOMATEOS_QUEUE_NAME"]))
        batch: list[bytes] = []
        for key in self.redis.scan_iter(match="rq:job:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                self.redis.unlink(*batch)
                batch = []
        if batch:
            self.redis.unlink(*batch)

    def enqueue_direct(self, workload: str, runs: int) -> None:
        """Put `runs` jobs of `workload`'s workflow straight on the run queue, through the one
        enqueue API, as bench.rq_baseline puts its no-op jobs on RQ's: the worker is measured
        alone, without the webhooks' sender and ingest on the same two cores."""
        workflow = self.workflows[workload]
        owner = self.db.fetchval(
            "SELECT owner_id FROM workflows WHERE id = $1", _uuid(workflow["id"])
        )
        # The async client is never used: commands() only renders what RQ would send.
        enqueuer = RunEnqueuer(
            aioredis.Redis.from_url(self.infra.redis_url),
            self.stack.env["AUTOMATEOS_QUEUE_NAME"],
            900,
        )
        body = orjson.loads(_body())
        shape = Workflow(_uuid(workflow["id"]), owner, int(workflow["version"]))
        for start in range(0, runs, 500):
            with self.redis.pipeline(transaction=False) as pipe:
                for _ in range(start, min(runs, start + 500)):
                    for args, _options in enqueuer.commands(run_job(shape, body)):
                        pipe.execute_command(*args)  # type: ignore[no-untyped-call]
                pipe.execute()

    # --- what the database says -----------------------------------------------------------

    def hook_url(self, workload: str) -> str:
        """The webhook URL of `workload`'s workflow."""
        return str(self.workflows[workload]["webhook_url"])

    def marker(self) -> datetime:
        """Where a round starts: runs accepted from now on belong to it."""
        return datetime.now(UTC)

    def finished(self, workload: str, since: datetime) -> tuple[int, int, float | None]:
        """(finished, succeeded, epoch of the last finish) for runs accepted since `since`."""
        row = self.db.fetch(
            "SELECT count(*) FILTER (WHERE status = ANY($3::text[])) AS done,"
            " count(*) FILTER (WHERE status = 'succeeded') AS ok,"
            " max(finished_at) AS last FROM workflow_runs"
            " WHERE workflow_id = $1 AND accepted_at >= $2",
            self._workflow_id(workload),
            since,
            list(FINISHED),
        )[0]
        last = row["last"].timestamp() if row["last"] else None
        return int(row["done"]), int(row["ok"]), last

    def queue_waits_ms(self, workload: str, since: datetime) -> list[float]:
        """accepted → started of every run of the round (the worker records both)."""
        rows = self.db.fetch(
            "SELECT extract(epoch FROM started_at - accepted_at) * 1000 AS wait"
            " FROM workflow_runs WHERE workflow_id = $1 AND accepted_at >= $2"
            " AND started_at IS NOT NULL",
            self._workflow_id(workload),
            since,
        )
        return [float(r["wait"]) for r in rows]

    def idle_latency_ms(self, workload: str, deadline_s: float = 15) -> float:
        """One webhook on an idle system: send → the run's finished_at, in ms."""
        sent, response = idle.post(self.hook_url(workload), _body())
        if response.status_code != 202:
            raise RuntimeError(f"webhook answered {response.status_code}: {response.text}")
        run_id = response.json()["run_id"]
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            done = self.db.fetchval(
                "SELECT finished_at FROM workflow_runs WHERE id = $1 AND status = ANY($2::text[])",
                _uuid(run_id),
                list(FINISHED),
            )
            if done is not None:
                return float((done.timestamp() - sent) * 1000)
            time.sleep(0.02)
        raise TimeoutError(f"run {run_id} not finished in {deadline_s}s")

    def history_rows(self) -> int:
        """How many runs the database holds."""
        return int(self.db.fetchval("SELECT count(*) FROM workflow_runs"))

    def seed_history(self, total: int) -> float:
        """Bring the run history to `total` rows (two steps each) in bulk SQL; seconds taken.

        One run a second back from now (10^6 runs span 11.6 days), so all of it is inside the
        retention window the stack runs with (see `running`).
        """
        missing = total - self.history_rows()
        if missing <= 0:
            return 0.0
        workflow = self.workflows["cpu"]
        started = time.monotonic()
        # Run ids are UUIDv7 (time-ordered): history must be too, or "newest first" orderings
        # (the API's pages, retention's per-workflow cap) would mix it with fresh runs.
        self.db.execute(UUID7_FUNCTION)
        # One statement: runs spread over the past year, each with the two steps it would have.
        self.db.execute(
            """
            WITH runs AS (
              INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status,
                trigger, attempt, accepted_at, started_at, finished_at, duration_ms)
              SELECT uuid7(now() - make_interval(secs => g)), $1, $2, 1, 'succeeded',
                jsonb_build_object('body', jsonb_build_object('n', g)), 1,
                now() - make_interval(secs => g), now() - make_interval(secs => g),
                now() - make_interval(secs => g), 3
              FROM generate_series(1, $3) AS g
              RETURNING id, started_at
            )
            INSERT INTO run_steps (run_id, position, node_id, type, status, input, output,
              attempt, started_at, duration_ms)
            SELECT runs.id, s.position, s.node_id, s.type, 'succeeded', '{}'::jsonb,
              '{}'::jsonb, 1, runs.started_at, 1
            FROM runs CROSS JOIN (VALUES (0, 'shape', 'transform'), (1, 'big', 'filter'))
              AS s(position, node_id, type)
            """,
            _uuid(workflow["id"]),
            _uuid(self._owner_id()),
            missing,
        )
        self.db.execute("ANALYZE workflow_runs")
        self.db.execute("ANALYZE run_steps")
        return time.monotonic() - started

    def _owner_id(self) -> str:
        return str(
            self.db.fetchval(
                "SELECT owner_id FROM workflows WHERE id = $1", _uuid(self.workflows["cpu"]["id"])
            )
        )

    def _workflow_id(self, workload: str) -> Any:
        return _uuid(self.workflows[workload]["id"])

    def versions(self) -> dict[str, str]:
        """PostgreSQL and Redis versions, for the report."""
        return {
            "PostgreSQL": str(self.db.fetchval("SHOW server_version")),
            "Redis (valkey)": str(self.redis.info("server").get("redis_version")),
        }


UUID7_FUNCTION = """
CREATE OR REPLACE FUNCTION uuid7(at timestamptz) RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) PLACING
    substring(int8send(floor(extract(epoch FROM at) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
    52, 1), 53, 1), 'hex')::uuid
$$
"""
# The worker's retention pruner keeps 10,000 runs per workflow by default: the history bench
# puts 10^6 in one workflow, which must stay there while it is measured.
RETENTION = {
    "AUTOMATEOS_RUN_RETENTION_MAX_PER_WORKFLOW": "2000000",
    "AUTOMATEOS_RUN_RETENTION_DAYS": "30",
    # The benchmarks drive one webhook as fast as it goes and queue up to 10^6 runs: the
    # production overload answers (docs/flow-control.md) would measure themselves instead.
    "AUTOMATEOS_INGEST_RATE_PER_S": "1000000",
    "AUTOMATEOS_INGEST_RATE_BURST": "1000000",
    "AUTOMATEOS_INGEST_MAX_BACKLOG": "10000000",
    "AUTOMATEOS_RUN_DATA_BUDGET_BYTES_PER_DAY": str(1 << 40),
}


def _body() -> bytes:
    from bench.ingest import BODY

    return BODY


def _uuid(value: str) -> Any:
    import uuid

    return uuid.UUID(str(value))


@contextmanager
def running(base: Path, slow_url: str) -> Iterator[Ours]:
    """PostgreSQL, Redis, auth, workflows and ingest up (the worker is started on demand)."""
    base.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        infra = stack.enter_context(running_infra(durable=True))
        env = stack_env(infra.database_url, infra.redis_url, base / "data") | RETENTION
        stack_obj = stack.enter_context(
            running_stack(env, base, ("auth", "workflows", "ingest"), worker_processes=0)
        )
        ours = Ours(infra, stack_obj, base, slow_url)
        try:
            yield ours
        finally:
            ours.stop_worker()
            ours.redis.close()
