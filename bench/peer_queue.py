"""n8n 2.8.4 in queue mode, the second peer: what a team running n8n on Kubernetes deploys.

Its main process takes the webhooks and puts each execution on a Bull queue in Redis; two
`n8n worker` processes (10 executions at once each, n8n's default) run them and write them to
PostgreSQL. PostgreSQL and Redis are embedded servers of their own (scripts/localinfra.py, as
our stack uses, durable as `make up` runs them), on free ports. Executions are counted in
PostgreSQL's `execution_entity`, as bench.peer counts them in SQLite.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import peer as peer_mod
from scripts.localinfra import PostgresServer, RedisServer, free_port, stop_process
from tests.fixtures.database import Database

WORKERS = 2
WORKER_CONCURRENCY = 10
FINISHED = list(peer_mod.FINISHED)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # n8n writes UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class N8nQueue(peer_mod.N8n):
    """n8n main + 2 workers + PostgreSQL + Redis; the same workflows and webhooks as regular."""

    name = "n8n queue"

    def __init__(self, home: Path, slow_url: str, log_dir: Path) -> None:
        super().__init__(home, slow_url, log_dir)
        self.postgres = PostgresServer(home.parent / "pg", durable=True)
        self.redis = RedisServer(home.parent / "redis", durable=True)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.db: Database | None = None

    def start_servers(self) -> None:
        """PostgreSQL with an `n8n` database, and Redis; the environment that points at them."""
        self.postgres.start()
        database = self.postgres.create_database("n8n")
        self.db = Database(database)
        self.redis.start()
        for key in [k for k in self.env if k.startswith("DB_SQLITE")]:
            del self.env[key]
        self.env.update(
            {
                "EXECUTIONS_MODE": "queue",
                "DB_TYPE": "postgresdb",
                "DB_POSTGRESDB_HOST": "127.0.0.1",
                "DB_POSTGRESDB_PORT": str(self.postgres.port),
                "DB_POSTGRESDB_DATABASE": "n8n",
                "DB_POSTGRESDB_USER": "postgres",
                "DB_POSTGRESDB_PASSWORD": "",
                "QUEUE_BULL_REDIS_HOST": "127.0.0.1",
                "QUEUE_BULL_REDIS_PORT": str(self.redis.port),
                # Main and workers must share it: workers decrypt what main stored.
                "N8N_ENCRYPTION_KEY": secrets.token_hex(24),
                # Each process starts its own task-runner broker: one port each.
                "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            }
        )

    def _spawn(self, args: list[str], log_name: str, env: dict[str, str]) -> Any:
        log = open(self.log_dir / log_name, "ab")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            ["node", str(peer_mod.n8n_main()), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return proc

    def start(self, deadline_s: float = 120) -> None:
        """Two `n8n worker` processes, then `n8n start` (which waits for every webhook)."""
        for number in range(1, WORKERS + 1):
            env = {
                **self.env,
                "N8N_RUNNERS_BROKER_PORT": str(free_port()),
                "QUEUE_HEALTH_CHECK_PORT": str(free_port()),
                "N8N_PORT": str(free_port()),
            }
            self.workers.append(
                self._spawn(
                    ["worker", f"--concurrency={WORKER_CONCURRENCY}"],
                    f"n8n-worker-{number}.log",
                    env,
                )
            )
        super().start(deadline_s)
        for worker in self.workers:
            if worker.poll() is not None:
                raise RuntimeError(f"an n8n worker exited: see {self.log_dir}/n8n-worker-*.log")

    def stop(self) -> None:
        """Main, workers, then Redis and PostgreSQL, each by its pid."""
        super().stop()
        for worker in self.workers:
            stop_process(worker, timeout=20)
        self.workers = []
        self.redis.stop()
        self.postgres.stop()

    def pids(self) -> dict[str, tuple[int, bool]]:
        out = {"n8n main": (self.proc.pid, False)} if self.proc else {}
        for number, worker in enumerate(self.workers, 1):
            out[f"n8n worker {number}"] = (worker.pid, False)
        if self.postgres.proc is not None:
            out["postgres"] = (self.postgres.proc.pid, True)
        if self.redis.proc is not None:
            out["redis"] = (self.redis.proc.pid, False)
        return out

    def cpu_groups(self) -> dict[str, list[int]]:
        """The workers run the executions; main, PostgreSQL and Redis complete the system."""
        return {
            "system": [pid for pid, _ in self.pids().values()],
            "worker": [worker.pid for worker in self.workers],
        }

    # --- PostgreSQL's execution_entity ---------------------------------------------------------

    def _fetch(self, sql: str, *args: object) -> list[Any]:
        assert self.db is not None, "start_servers() first"
        return self.db.fetch(sql, *args)

    def marker(self) -> int:
        return int(self._fetch("SELECT coalesce(max(id), 0) AS m FROM execution_entity")[0]["m"])

    def finished(self, workload: str, since: int) -> tuple[int, int, float | None]:
        row = self._fetch(
            "SELECT count(*) AS done, count(*) FILTER (WHERE status = 'success') AS ok,"
            ' max("stoppedAt") AS last FROM execution_entity'
            ' WHERE "workflowId" = $1 AND id > $2 AND status = ANY($3::text[])'
            ' AND "stoppedAt" IS NOT NULL',
            self.ids[workload],
            since,
            FINISHED,
        )[0]
        return int(row["done"]), int(row["ok"]), _epoch(row["last"])

    def unfinished(self, workload: str, since: int) -> int:
        return int(
            self._fetch(
                'SELECT count(*) AS n FROM execution_entity WHERE "workflowId" = $1 AND id > $2'
                ' AND "stoppedAt" IS NULL',
                self.ids[workload],
                since,
            )[0]["n"]
        )

    def queue_waits_ms(self, workload: str, since: int) -> list[float]:
        rows = self._fetch(
            'SELECT extract(epoch FROM "startedAt" - "createdAt") * 1000 AS wait'
            ' FROM execution_entity WHERE "workflowId" = $1 AND id > $2'
            ' AND "startedAt" IS NOT NULL',
            self.ids[workload],
            since,
        )
        return [max(0.0, float(r["wait"])) for r in rows if r["wait"] is not None]

    def versions(self) -> dict[str, str]:
        return {
            "n8n queue mode": f"main + {WORKERS} workers (--concurrency={WORKER_CONCURRENCY}), "
            f"PostgreSQL {self._fetch('SHOW server_version')[0][0]}, Redis (valkey)"
        }


def start_queue_peer(base: Path, slow_url: str) -> N8nQueue:
    """A fresh n8n in queue mode with the bench workflows published (the caller stops it)."""
    if peer_mod.installed_version() != peer_mod.VERSION:
        raise SystemExit(f"n8n {peer_mod.VERSION} is not installed: run `make bench-n8n`")
    home = base / "n8n-home"
    home.mkdir(parents=True, exist_ok=True)
    peer = N8nQueue(home, slow_url, base)
    try:
        peer.start_servers()
        peer.import_and_publish()
        peer.start()
    except BaseException:
        peer.stop()
        shutil.rmtree(base / "pg", ignore_errors=True)
        raise
    return peer
