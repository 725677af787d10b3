"""The "200 ms API" the I/O-bound workloads call: `python -m bench.slow_api PORT [DELAY_S]`.

A bare ASGI app under uvicorn in its own process (so it never competes with the bench's own
GIL): every request, whatever its method and path, is answered `200 {"ok": true}` after the
delay. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn

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
