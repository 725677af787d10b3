"""`make up` itself: a taken port is named and refused; killed, it leaves nothing running.

Each case runs the real `scripts.devstack` (or `make up`) with every port moved by an offset, so
it never meets a developer's own stack on the default ports.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.localinfra import PostgresServer, port_in_use
from tests.chaos.harness import alive, descendants
from tests.fixtures.stack import ROOT

# The defaults in scripts/devstack.py: auth, workflows, ingest, worker metrics, PostgreSQL, Redis.
DEFAULT_PORTS = {
    "auth": 8001,
    "workflows": 8002,
    "ingest": 8003,
    "worker metrics": 9100,
    "postgres": 15432,
    "redis": 16379,
}
UP_WITHIN_S = 120
GONE_WITHIN_S = 40


def _free_offset() -> int:
    """An offset that puts every port of the stack on a free one (below the ephemeral range)."""
    for _ in range(50):
        offset = random.randrange(1000, 16000)
        if not any(port_in_use(port + offset) for port in DEFAULT_PORTS.values()):
            return offset
    raise RuntimeError("no free set of ports found")


@contextmanager
def _data_dir() -> Iterator[Path]:
    # Not under pytest's 0700 tmp: as root PostgreSQL runs as 'nobody', who must enter it.
    folder = Path(tempfile.mkdtemp(prefix="automateos-devstack-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _start(command: list[str], offset: int, data_dir: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUTOMATEOS_DEV_PORT_OFFSET": str(offset),
        "AUTOMATEOS_DATA_DIR": str(data_dir),
    }
    for name in ("DATABASE_URL", "REDIS_URL"):
        env.pop(name, None)
    with open(data_dir / "up.log", "ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our signals reach only the process we mean
        )


def _devstack() -> list[str]:
    return [sys.executable, "-m", "scripts.devstack", "up", "--workers", "1"]


def _wait_up(proc: subprocess.Popen[bytes], log: Path) -> None:
    end = time.monotonic() + UP_WITHIN_S
    while time.monotonic() < end:
        if "AutomateOS is up" in log.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"the stack did not come up:\n{log.read_text(errors='replace')[-3000:]}")


def _kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def _holding(port: int, holder: str) -> Iterator[None]:
    """Hold 127.0.0.1:port with a bare listening socket or with another PostgreSQL cluster."""
    if holder == "socket":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            yield
        return
    with _data_dir() as folder:
        other = PostgresServer(folder / "other", port=port, durable=False).start()
        try:
            yield
        finally:
            other.stop()


class TestTakenPort:
    @pytest.mark.parametrize(
        ("taken", "holder"),
        [("postgres", "socket"), ("postgres", "another cluster"), ("ingest", "socket")],
    )
    def test_it_names_the_port_and_exits_non_zero(self, taken: str, holder: str) -> None:
        offset = _free_offset()
        port = DEFAULT_PORTS[taken] + offset
        with _data_dir() as data, _holding(port, holder):
            proc = _start(_devstack(), offset, data)
            try:
                code = proc.wait(30)
            finally:
                _kill_leftovers([proc.pid, *descendants(proc.pid)])
            output = (data / "up.log").read_text(errors="replace")
        assert code != 0, output
        assert f"{port} ({taken})" in output, output
        assert "ready on" not in output, output  # nothing started, nothing claimed


class TestKilled:
    @pytest.mark.parametrize(
        ("launcher", "sig"),
        [
            ("devstack", signal.SIGKILL),
            ("devstack", signal.SIGHUP),  # its terminal closed
            ("make", signal.SIGKILL),
        ],
    )
    def test_nothing_it_started_outlives_it(
        self, launcher: str, sig: signal.Signals, report: Callable[[str], None]
    ) -> None:
        offset = _free_offset()
        command = ["make", "-s", "up"] if launcher == "make" else _devstack()
        with _data_dir() as data:
            proc = _start(command, offset, data)
            started: list[int] = []
            try:
                _wait_up(proc, data / "up.log")
                started = descendants(proc.pid)
                os.kill(proc.pid, sig)
                killed_at = time.monotonic()
                proc.wait(10)
                end = killed_at + GONE_WITHIN_S
                while any(alive(pid) for pid in started) and time.monotonic() < end:
                    time.sleep(0.2)
                gone_s = time.monotonic() - killed_at
                survivors = [pid for pid in started if alive(pid)]
            finally:
                _kill_leftovers([proc.pid, *started, *descendants(proc.pid)])
        report(
            f"make up {launcher} {sig.name}: processes={len(started)}"
            f" survivors={len(survivors)} gone_s={gone_s:.1f}"
        )
        # PostgreSQL (with its backends), Redis, three services and the worker at least.
        assert len(started) >= 6, started
        assert survivors == [], survivors
        assert not [p for p in DEFAULT_PORTS.values() if port_in_use(p + offset)]
