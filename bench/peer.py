"""n8n 2.8.4 as the peer: installed from npm into .tools/, run on SQLite, read from SQLite.

`python -m bench.peer install` installs it once (idempotent; ~4 minutes and 2.3 GB cold).
`running()` starts it with telemetry off in a fresh user folder, imports the bench workflows
and publishes them from its own CLI, and warms it up. Webhook nodes answer as soon as they
receive (`responseMode: onReceived`), like our 202. Executions are counted in its database,
`execution_entity`, the way ours are counted in PostgreSQL.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import idle, workloads
from scripts.localinfra import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
VERSION = "2.8.4"
INSTALL_DIR = ROOT / ".tools" / f"n8n-{VERSION}"
# Its default `xlsx` dependency comes from a CDN that is unreachable here; 0.18.5 is on npm.
PACKAGE_JSON = {
    "name": "automateos-bench-n8n",
    "private": True,
    "dependencies": {"n8n": VERSION},
    "overrides": {"xlsx": "0.18.5"},
}
FINISHED = ("success", "error", "crashed", "canceled")
QUIET = {
    "SCARF_ANALYTICS": "false",
    "N8N_DIAGNOSTICS_ENABLED": "false",
    "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
    "N8N_PERSONALIZATION_ENABLED": "false",
    "N8N_TEMPLATES_ENABLED": "false",
    "N8N_HIRING_BANNER_ENABLED": "false",
    "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "false",
}
# What n8n's docs recommend for production, as a team running it would set it: the production
# build of its web stack, logs at warn, every execution saved with its data (the defaults, which
# a user keeps to see the history; said explicitly so a changed default cannot slip in), and the
# default pruning (by age, 14 days, and past 10,000 executions, far above what a round makes).
PRODUCTION = {
    "NODE_ENV": "production",
    "N8N_LOG_LEVEL": "warn",
    "EXECUTIONS_DATA_SAVE_ON_SUCCESS": "all",
    "EXECUTIONS_DATA_SAVE_ON_ERROR": "all",
    "EXECUTIONS_DATA_SAVE_ON_PROGRESS": "false",
    "EXECUTIONS_DATA_PRUNE": "true",
}
REGULAR = {"DB_TYPE": "sqlite", "EXECUTIONS_MODE": "regular"}
# n8n's own published figure for one instance (docs.n8n.io, "Measure performance"): Webhook →
# Set, single instance on an AWS c5a.large (2 vCPU, 4 GB).
PUBLISHED_RUNS_PER_S = 220.0
PUBLISHED = "up to 220 executions/s, Webhook → Set, single instance, c5a.large (2 vCPU)"


def n8n_main() -> Path:
    """The n8n CLI entry point inside the install folder."""
    return INSTALL_DIR / "node_modules" / "n8n" / "bin" / "n8n"


def installed_version() -> str | None:
    """The installed n8n version, or None."""
    manifest = INSTALL_DIR / "node_modules" / "n8n" / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text())["version"])


def install() -> None:
    """`npm install n8n@VERSION` into .tools/ unless that version is already there."""
    if installed_version() == VERSION:
        print(f"n8n {VERSION} already installed in {INSTALL_DIR}")
        return
    if shutil.which("npm") is None:
        raise SystemExit("bench-peer needs Node.js 20 and npm (apt-get install nodejs npm)")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    (INSTALL_DIR / "package.json").write_text(json.dumps(PACKAGE_JSON, indent=2) + "\n")
    print(f"installing n8n {VERSION} into {INSTALL_DIR} (~4 minutes, 2.3 GB, once)", flush=True)
    started = time.monotonic()
    subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=INSTALL_DIR,
        env={**os.environ, "SCARF_ANALYTICS": "false"},
        check=True,
        timeout=1800,
    )
    print(f"n8n installed in {time.monotonic() - started:.0f} s", flush=True)


def _stamp(moment: datetime) -> str:
    # n8n writes SQLite timestamps as UTC text, 'YYYY-MM-DD HH:MM:SS.SSS'.
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=UTC).timestamp()


class N8n:
    """A running n8n, its workflow ids and webhook URLs, and reads of its execution table."""

    name = "n8n"

    def __init__(self, home: Path, slow_url: str, log_dir: Path) -> None:
        self.home = home
        self.port = free_port()
        self.log_dir = log_dir
        self.env = {
            **os.environ,
            **QUIET,
            **PRODUCTION,
            **REGULAR,
            "N8N_USER_FOLDER": str(home),
            "N8N_PORT": str(self.port),
            "N8N_LISTEN_ADDRESS": "127.0.0.1",
            "N8N_HOST": "127.0.0.1",
            "WEBHOOK_URL": f"http://127.0.0.1:{self.port}/",
        }
        self.ids = {
            name: f"bench{name:0<11}"[:16]
            for name in ("ingest", *(w.name for w in workloads.WORKLOADS))
        }
        self.paths = {name: f"bench-{name}" for name in self.ids}
        self.slow_url = slow_url
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def database(self) -> Path:
        return self.home / ".n8n" / "database.sqlite"

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            ["node", str(n8n_main()), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"n8n {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def import_and_publish(self) -> None:
        """Import every bench workflow in one file, then publish each (import deactivates)."""
        flows = [
            workloads.n8n(name, self.slow_url, self.ids[name], self.paths[name])
            for name in self.ids
        ]
        source = self.home / "bench-workflows.json"
        source.write_text(json.dumps(flows, indent=1))
        self._cli("import:workflow", f"--input={source}")
        for workflow_id in self.ids.values():
            self._cli("publish:workflow", f"--id={workflow_id}")

    def start(self, deadline_s: float = 120) -> None:
        """`n8n start` and wait for /healthz and for every webhook to answer."""
        log = open(self.log_dir / "n8n.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            ["node", str(n8n_main()), "start"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port, deadline_s, self.proc)
        end = time.monotonic() + deadline_s
        for name in self.ids:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"n8n exited: see {self.log_dir / 'n8n.log'}")
                try:
                    status = httpx.post(self.hook_url(name), json={"warm": True}, timeout=5)
                    if status.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > end:
                    raise TimeoutError(f"n8n webhook {name} never answered 200")
                time.sleep(0.5)

    def stop(self) -> None:
        """Stop n8n by its pid (SIGTERM, then SIGKILL after the timeout)."""
        if self.proc is not None:
            stop_process(self.proc, timeout=20)
            self.proc = None

    def pids(self) -> dict[str, tuple[int, bool]]:
        """label -> (pid, summed) for the memory sampler (its task runner shows as a child)."""
        return {"n8n": (self.proc.pid, False)} if self.proc else {}

    def cpu_groups(self) -> dict[str, list[int]]:
        """Regular mode runs every execution in its main process (and its task runner child)."""
        pids = [self.proc.pid] if self.proc else []
        return {"system": pids, "worker": pids}

    def hook_url(self, workload: str) -> str:
        """The production webhook URL of `workload`."""
        return f"http://127.0.0.1:{self.port}/webhook/{self.paths[workload]}"

    def _query(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=30)
        try:
            return list(connection.execute(sql, args))
        finally:
            connection.close()

    def marker(self) -> int:
        """Where a round starts: the highest execution id so far."""
        return int(self._query("SELECT coalesce(max(id), 0) FROM execution_entity")[0][0] or 0)

    def finished(self, workload: str, since: int) -> tuple[int, int, float | None]:
        """(finished, succeeded, epoch of the last finish) of executions after `since`."""
        marks = ",".join("?" * len(FINISHED))
        done, ok, last = self._query(
            f"SELECT count(*), coalesce(sum(status = 'success'), 0), max(stoppedAt)"
            f" FROM execution_entity WHERE workflowId = ? AND id > ? AND status IN ({marks})"
            " AND stoppedAt IS NOT NULL",
            self.ids[workload],
            since,
            *FINISHED,
        )[0]
        return int(done or 0), int(ok or 0), _epoch(str(last)) if last else None

    def unfinished(self, workload: str, since: int) -> int:
        """Executions of the round that have not stopped yet."""
        return int(
            self._query(
                "SELECT count(*) FROM execution_entity WHERE workflowId = ? AND id > ?"
                " AND stoppedAt IS NULL",
                self.ids[workload],
                since,
            )[0][0]
            or 0
        )

    def queue_waits_ms(self, workload: str, since: int) -> list[float]:
        """createdAt → startedAt of every execution of the round."""
        rows = self._query(
            "SELECT (julianday(startedAt) - julianday(createdAt)) * 86400000.0"
            " FROM execution_entity WHERE workflowId = ? AND id > ? AND startedAt IS NOT NULL",
            self.ids[workload],
            since,
        )
        return [max(0.0, float(r[0])) for r in rows if r[0] is not None]

    def idle_latency_ms(self, workload: str, deadline_s: float = 15) -> float:
        """One webhook on an idle n8n: send → its execution's stoppedAt, in ms."""
        from bench.ingest import BODY

        since = self.marker()
        sent, response = idle.post(self.hook_url(workload), BODY)
        if response.status_code != 200:
            raise RuntimeError(f"n8n webhook answered {response.status_code}: {response.text}")
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            done, _, last = self.finished(workload, since)
            if done and last is not None:
                return (last - sent) * 1000
            time.sleep(0.02)
        raise TimeoutError(f"n8n execution of {workload} not finished in {deadline_s}s")

    def versions(self) -> dict[str, str]:
        """n8n and Node.js versions, for the report."""
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
        return {"n8n": installed_version() or "?", "Node.js": node.stdout.strip()}


def start_peer(base: Path, slow_url: str) -> N8n:
    """A fresh n8n with the bench workflows published and answering (the caller stops it).

    Import and publish are one n8n CLI start-up each (~15 s apiece on a busy machine), so the
    bench runs this in a thread while our stack starts.
    """
    if installed_version() != VERSION:
        raise SystemExit(f"n8n {VERSION} is not installed: run `make bench-peer` (it installs it)")
    home = base / "n8n-home"
    home.mkdir(parents=True, exist_ok=True)
    peer = N8n(home, slow_url, base)
    try:
        peer.import_and_publish()
        peer.start()
    except BaseException:
        peer.stop()
        raise
    return peer


if __name__ == "__main__":
    if sys.argv[1:] == ["install"]:
        install()
    else:
        raise SystemExit("usage: python -m bench.peer install")
