"""The local servers' guards: a taken port is refused, children die with their parent."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from scripts.devstack import DEV_REDIS_MAXMEMORY
from scripts.localinfra import PortTaken, RedisServer, free_port, port_in_use


class TestPortInUse:
    def test_a_listening_port_is_in_use_and_a_closed_one_is_not(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            assert port_in_use(port)
        assert not port_in_use(port)

    def test_a_server_refuses_a_taken_port_instead_of_calling_it_its_own(
        self, tmp_path: Path
    ) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            server = RedisServer(tmp_path, port=port, durable=False)
            with pytest.raises(PortTaken, match=str(port)):
                server.start()
        assert server.proc is None


class TestRedisMemory:
    def test_make_ups_redis_is_bounded_and_never_evicts(self, tmp_path: Path) -> None:
        server = RedisServer(tmp_path, durable=False, maxmemory=DEV_REDIS_MAXMEMORY).start()
        try:
            client = redis.Redis.from_url(server.url)
            assert client.config_get("maxmemory")["maxmemory"] == str(256 * 1024 * 1024)
            assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
            client.close()
        finally:
            server.stop()


# A parent that starts `sleep` with die_with_parent(), prints its pid and waits to be killed.
_PARENT = """
import subprocess, sys, time
from scripts.localinfra import die_with_parent
child = subprocess.Popen(["sleep", "60"], preexec_fn=die_with_parent())
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
class TestDieWithParent:
    def test_the_child_goes_when_its_parent_is_killed(self) -> None:
        root = Path(__file__).resolve().parents[2]
        parent = subprocess.Popen([sys.executable, "-c", _PARENT], cwd=root, stdout=subprocess.PIPE)
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        end = time.monotonic() + 10
        while time.monotonic() < end and _running(child):
            time.sleep(0.05)
        assert not _running(child)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_free_port_is_free() -> None:
    assert not port_in_use(free_port())
