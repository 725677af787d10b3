"""`make up`: the whole stack on one machine, no Docker.

Starts embedded PostgreSQL and Redis (unless DATABASE_URL / REDIS_URL point at real ones), applies
the migrations, starts every service on its port with prefixed logs, and stops everything on
Ctrl-C, SIGTERM or SIGHUP (the terminal closing). Data lives in `.data/` (AUTOMATEOS_DATA_DIR)
across restarts.

Nothing outlives it on Linux: every child is started with a parent-death signal, so even a
SIGKILL of this process (or of the `make` above it, which signals us the same way) stops the
services, PostgreSQL and Redis. Elsewhere only the graceful paths stop them.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

from scripts.localinfra import (
    PortTaken,
    PostgresServer,
    RedisServer,
    die_with_parent,
    exit_with_parent,
    port_in_use,
    reachable_by_others,
    running_as_root,
    stop_process,
)
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {"auth": 36, "workflows": 35, "ingest": 33, "worker": 32, "postgres": 34, "redis": 31}
SERVICES = (("auth", 8001), ("workflows", 8002), ("ingest", 8003))
METRICS_PORT = 9100
# `make up`'s Redis bound (override with AUTOMATEOS_DEV_REDIS_MAXMEMORY), with noeviction: a
# full Redis refuses writes rather than drop accepted jobs; ingest answers 503 before that.
DEV_REDIS_MAXMEMORY = "256mb"


def _say(prefix: str, line: str) -> None:
    colour = COLOURS.get(prefix, 37)
    tag = f"\033[{colour}m{prefix:>9} |\033[0m" if sys.stdout.isatty() else f"{prefix:>9} |"
    sys.stdout.write(f"{tag} {line}\n")
    sys.stdout.flush()


def _pump(prefix: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        _say(prefix, raw.decode(errors="replace").rstrip())


def _postgres_dir(data_dir: Path) -> Path:
    """Where PostgreSQL keeps its files: in the data folder when its user can reach it.

    As root, PostgreSQL runs as 'nobody', which cannot enter a checkout under a private home
    folder. Rather than loosen permissions we do not own, keep the cluster under the system temp
    folder, in a path derived from the checkout so restarts find it again.
    """
    wanted = data_dir / "postgres"
    if not running_as_root() or reachable_by_others(data_dir.resolve()):
        return wanted
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    fallback = Path("/var/tmp") / f"automateos-{digest}" / "postgres"  # noqa: S108 - see above
    fallback.parent.mkdir(parents=True, exist_ok=True)
    fallback.parent.chmod(0o755)
    _say("postgres", f"{data_dir} is not reachable by 'nobody'; keeping PostgreSQL in {fallback}")
    return fallback


def _wait_ready(name: str, url: str, proc: subprocess.Popen[bytes], deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} did not become ready at {url}")


def _check_ports(ports: dict[str, int]) -> None:
    """Refuse to start when any port we are about to bind is held by another process."""
    taken = [f"{port} ({name})" for name, port in ports.items() if port_in_use(port)]
    if taken:
        raise PortTaken(
            f"127.0.0.1 port(s) already in use: {', '.join(taken)}; stop what holds them, or "
            "move the whole stack with AUTOMATEOS_DEV_PORT_OFFSET=<n> (or --port-offset)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.devstack")
    parser.add_argument("command", choices=["up"])
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    # Below Linux's ephemeral range (32768-60999), so an outgoing connection's local port can
    # never be holding them when the stack starts.
    parser.add_argument(
        "--pg-port", type=int, default=int(os.environ.get("AUTOMATEOS_DEV_PG_PORT", 15432))
    )
    parser.add_argument(
        "--redis-port", type=int, default=int(os.environ.get("AUTOMATEOS_DEV_REDIS_PORT", 16379))
    )
    parser.add_argument(
        "--port-offset",
        type=int,
        default=int(os.environ.get("AUTOMATEOS_DEV_PORT_OFFSET", 0)),
        help="added to every port, to run a second stack beside the first",
    )
    args = parser.parse_args()
    # When whoever started us (make, a shell) dies, stop as on Ctrl-C.
    exit_with_parent()
    offset = args.port_offset
    services_at = [(name, port + offset) for name, port in SERVICES]
    metrics_port = METRICS_PORT + offset

    data_dir = Path(os.environ.get("AUTOMATEOS_DATA_DIR", ROOT / ".data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AUTOMATEOS_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    ports = dict(services_at)
    env.setdefault("AUTOMATEOS_AUTH_URL", f"http://127.0.0.1:{ports['auth']}")
    env.setdefault("AUTOMATEOS_WORKFLOWS_URL", f"http://127.0.0.1:{ports['workflows']}")
    env.setdefault("AUTOMATEOS_PUBLIC_URL", f"http://127.0.0.1:{ports['ingest']}")
    env["AUTOMATEOS_METRICS_PORT"] = str(metrics_port)
    ports["worker metrics"] = metrics_port
    if "DATABASE_URL" not in os.environ:
        ports["postgres"] = args.pg_port + offset
    if "REDIS_URL" not in os.environ:
        ports["redis"] = args.redis_port + offset
    infra: list[PostgresServer | RedisServer] = []
    services: list[tuple[str, subprocess.Popen[bytes]]] = []
    stopping = threading.Event()

    def _stop(_signum: int, _frame: object) -> None:
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    try:
        _check_ports(ports)
        if "DATABASE_URL" not in os.environ:
            postgres = PostgresServer(
                _postgres_dir(data_dir), port=ports["postgres"], die_with_parent=True
            )
            infra.append(postgres)
            postgres.start()
            if not postgres.psql("SELECT 1 FROM pg_database WHERE datname = 'automateos'").strip():
                postgres.create_database("automateos")
            env["DATABASE_URL"] = postgres.url_for("automateos")
            _say("postgres", f"ready on 127.0.0.1:{postgres.port} (data: {postgres.base_dir})")
        if "REDIS_URL" not in os.environ:
            redis_server = RedisServer(
                data_dir / "redis",
                port=ports["redis"],
                die_with_parent=True,
                maxmemory=os.environ.get("AUTOMATEOS_DEV_REDIS_MAXMEMORY", DEV_REDIS_MAXMEMORY),
            )
            infra.append(redis_server)
            redis_server.start()
            env["REDIS_URL"] = redis_server.url
            _say(
                "redis",
                f"ready on 127.0.0.1:{redis_server.port} (append-only file on, "
                f"maxmemory {redis_server.maxmemory} noeviction)",
            )

        if not os.environ.get("AUTOMATEOS_ENCRYPTION_KEYS"):
            # Generated once, before the migration (which seals existing webhook secrets) and
            # before the services start, so they all read the same file.
            Settings(data_dir=data_dir).keyring()
            _say("keys", f"credentials encrypted with the key in {data_dir / 'encryption-keys'}")
        subprocess.run(
            [sys.executable, "-m", "shared.db", "upgrade"],
            cwd=ROOT,
            env=env,
            check=True,
            preexec_fn=die_with_parent(),
        )
        _say("postgres", "migrations applied")

        commands = [(name, ["--port", str(port)]) for name, port in services_at]
        commands.append(("worker", ["--processes", str(args.workers)]))
        for name, extra in commands:
            proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{name}", *extra],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us; we stop services in order
                preexec_fn=die_with_parent(),
            )
            assert proc.stdout is not None
            threading.Thread(target=_pump, args=(name, proc.stdout), daemon=True).start()
            services.append((name, proc))

        urls = [(name, f"http://127.0.0.1:{port}/readyz") for name, port in services_at]
        urls.append(("worker", f"http://127.0.0.1:{metrics_port}/readyz"))
        for (name, url), (_, proc) in zip(urls, services, strict=True):
            _wait_ready(name, url, proc, 60)
        print(
            "\nAutomateOS is up:\n"
            f"  auth       http://127.0.0.1:{ports['auth']}  (/auth/register, /auth/login, /docs)\n"
            f"  workflows  http://127.0.0.1:{ports['workflows']}  (/workflows, /runs, /nodes)\n"
            f"  console    http://127.0.0.1:{ports['workflows']}/console/  (log in as a user)\n"
            f"  ingest     http://127.0.0.1:{ports['ingest']}  (/hooks/<token>)\n"
            f"  worker     {args.workers} processes, metrics on http://127.0.0.1:{metrics_port}/metrics\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping.wait(0.5):
            for name, proc in services:
                if proc.poll() is not None:
                    _say(name, f"exited with {proc.returncode}; stopping the stack")
                    return 1
        return 0
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        _say("devstack", f"failed: {exc}")
        return 1
    finally:
        for _name, proc in reversed(services):
            proc.send_signal(signal.SIGTERM)
        for _name, proc in reversed(services):
            stop_process(proc, timeout=30)
        for server in reversed(infra):
            server.stop()
        _say("devstack", "stopped")


if __name__ == "__main__":
    sys.exit(main())
