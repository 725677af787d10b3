"""The "200 ms API" the I/O-bound workloads call: `python -m bench.slow_api PORT [DELAY_S]`.

A bare ASGI app under uvicorn in its own process (so it never competes with the bench's own
GIL): every request, whatever its method and path, is answered `200 {"ok": true}` after the
delay. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from scripts.localinfra import free_port, stop_process, wait_for_port

DELAY_S = 0.2
BODY = b'{"ok": true}'


def make_app(delay_s: float) -> Any:
    """An ASGI app that drains the request body, sleeps `delay_s`, then answers."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await asyncio.sleep(delay_s)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": BODY})

    return app


@contextmanager
def serving() -> Iterator[str]:
    """The API in a process of its own until the block ends; yields its URL."""
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "bench.slow_api", str(port)], cwd=root)
    try:
        wait_for_port(port, 30, proc)
        yield f"http://127.0.0.1:{port}/orders"
    finally:
        stop_process(proc, timeout=10)


def main(argv: list[str]) -> int:
    """Serve on 127.0.0.1:PORT until terminated."""
    port = int(argv[0])
    delay_s = float(argv[1]) if len(argv) > 1 else DELAY_S
    uvicorn.run(
        make_app(delay_s),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        backlog=4096,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
