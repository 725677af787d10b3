"""Request limits on every running service, over raw sockets: huge or countless headers, bodies
over the limit, clients that send half a request and stall.

The test stack sets the read deadlines to 2 s (head) and 3 s (body); the worker's probe server
has a fixed 5 s deadline for its whole request head.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
import redis

from shared.hooks import HookRecord, encode_record, hook_key, token_hash
from tests.fixtures.stack import Stack

HTTP_SERVICES = ("auth", "workflows", "ingest")


def _address(stack: Stack, name: str) -> tuple[str, int]:
    if name == "worker":
        return "127.0.0.1", int(stack.env["AUTOMATEOS_METRICS_PORT"])
    parts = urlsplit(stack.url(name))
    return parts.hostname or "127.0.0.1", parts.port or 80


def _connect(stack: Stack, name: str) -> socket.socket:
    sock = socket.create_connection(_address(stack, name), timeout=10)
    sock.settimeout(10)
    return sock


def _read_all(sock: socket.socket, deadline_s: float) -> bytes:
    """Everything the server sends until it closes (or the deadline passes)."""
    sock.settimeout(0.5)
    data = b""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _status(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    # The server may answer and close before it has read everything we send.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        sock.sendall(data)


@pytest.mark.parametrize("name", HTTP_SERVICES)
class TestHeaders:
    def test_oversize_header_is_431(self, stack: Stack, name: str) -> None:
        with _connect(stack, name) as sock:
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (40 * 1024) + b"\r\n\r\n"
            _send_quietly(sock, head)
            assert _status(_read_all(sock, 5)) == 431

    def test_endless_header_is_cut_off(self, stack: Stack, name: str) -> None:
        # 30 MiB of one header value: refused after ~32 KiB, never buffered whole.
        with _connect(stack, name) as sock:
            _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent = 0
            try:
                for _ in range(480):
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert sent < 4 * 1024 * 1024
            response = _read_all(sock, 5)
            assert response == b"" or _status(response) == 431

    def test_too_many_headers_is_431(self, stack: Stack, name: str) -> None:
        with _connect(stack, name) as sock:
            fields = b"".join(b"X-H%d: v\r\n" % i for i in range(101))
            _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
            assert _status(_read_all(sock, 5)) == 431

    def test_ordinary_request_still_works(self, stack: Stack, name: str) -> None:
        with _connect(stack, name) as sock:
            fields = b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 100) for i in range(90))
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
            assert _status(sock.recv(65536)) == 200


@pytest.fixture(scope="module")
def hook_path(stack: Stack) -> bytes:
    """A routed webhook on the stack's ingest, so ingest reads the body before it answers."""
    token = secrets.token_urlsafe(32)
    record: HookRecord = {
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "version": 1,
        "active": True,
        "signature": None,
    }
    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    client.set(hook_key(token_hash(token)), encode_record(record), ex=600)
    client.close()
    return f"/hooks/{token}".encode()


@pytest.mark.parametrize("name", HTTP_SERVICES)
class TestSlowClients:
    def test_silent_connection_is_closed(self, stack: Stack, name: str) -> None:
        with _connect(stack, name) as sock:
            start = time.monotonic()
            response = _read_all(sock, 15)
            assert time.monotonic() - start < 6
            assert response == b"" or _status(response) == 408

    def test_half_sent_head_is_408_within_the_deadline(self, stack: Stack, name: str) -> None:
        with _connect(stack, name) as sock:
            start = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            # Dripping header lines does not extend the deadline.
            for i in range(3):
                time.sleep(0.5)
                _send_quietly(sock, b"X-Drip-%d: 1\r\n" % i)
            response = _read_all(sock, 15)
            assert time.monotonic() - start < 6
            assert _status(response) == 408

    def test_half_sent_body_is_408_within_the_deadline(
        self, stack: Stack, name: str, hook_path: bytes
    ) -> None:
        path = {"auth": b"/auth/login", "workflows": b"/workflows", "ingest": hook_path}[name]
        with _connect(stack, name) as sock:
            start = time.monotonic()
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b'Content-Length: 100\r\n\r\n{"email": '
            )
            response = _read_all(sock, 15)
            assert time.monotonic() - start < 7
            assert _status(response) == 408


class TestBodies:
    @pytest.mark.parametrize("name", ["auth", "workflows"])
    def test_declared_oversize_body_is_413_before_it_is_sent(self, stack: Stack, name: str) -> None:
        path = b"/auth/register" if name == "auth" else b"/workflows"
        with _connect(stack, name) as sock:
            sock.sendall(
                b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 104857600\r\n\r\n"
            )
            assert _status(_read_all(sock, 5)) == 413

    def test_auth_body_over_64_kib_is_413(self, stack: Stack) -> None:
        with _connect(stack, "auth") as sock:
            body = b'{"email": "a@example.com", "password": "' + b"x" * 70_000 + b'"}'
            head = b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            _send_quietly(sock, head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            assert _status(_read_all(sock, 5)) == 413


class TestWorkerProbes:
    def test_dripped_head_is_dropped_within_5_s(self, stack: Stack) -> None:
        if "worker" not in stack.services:
            pytest.skip("no worker in this stack")
        with _connect(stack, "worker") as sock:
            start = time.monotonic()
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            # One line every second: before, each line restarted a 5 s timer (100 lines).
            for i in range(8):
                time.sleep(1)
                try:
                    sock.sendall(b"X-Drip-%d: 1\r\n" % i)
                except (BrokenPipeError, ConnectionResetError):
                    break
            response = _read_all(sock, 5)
            assert time.monotonic() - start < 7.5
            assert response == b"" or _status(response) == 400

    def test_oversize_line_is_400(self, stack: Stack) -> None:
        if "worker" not in stack.services:
            pytest.skip("no worker in this stack")
        with _connect(stack, "worker") as sock:
            _send_quietly(sock, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
            assert _status(_read_all(sock, 5)) == 400
