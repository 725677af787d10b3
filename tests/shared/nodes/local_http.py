"""A real HTTP server on 127.0.0.1 for node and egress tests (uvicorn in a background thread)."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from shared.nodes import EgressPolicy, NodeContext, build_http_client

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
BIG_BODY_BYTES = 2 * 1024 * 1024


@dataclass
class LocalServer:
    """The running server: its base URL, the paths it was asked for and with which headers."""

    base_url: str
    hits: list[str] = field(default_factory=list)
    headers: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (path, headers)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


def _app(server: LocalServer) -> Starlette:
    async def record(request: Request) -> None:
        server.hits.append(request.url.path)
        server.headers.append((request.url.path, dict(request.headers)))

    async def echo(request: Request) -> Response:
        await record(request)
        body = (await request.body()).decode()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": [[k, v] for k, v in request.query_params.multi_items()],
                "headers": dict(request.headers),
                "body": body,
            }
        )

    async def reflect(request: Request) -> Response:
        # A careless API: answers an error that quotes the request's headers and body.
        await record(request)
        body = (await request.body()).decode()
        quoted = f"rejected {dict(request.headers)} {body}"
        return PlainTextResponse(quoted, status_code=int(request.path_params["code"]))

    async def text(request: Request) -> Response:
        await record(request)
        return PlainTextResponse("héllo text", headers={"X-Custom": "yes"})

    async def status(request: Request) -> Response:
        await record(request)
        headers = {}
        if "retry_after" in request.query_params:
            headers["Retry-After"] = request.query_params["retry_after"]
        code = int(request.path_params["code"])
        return PlainTextResponse(f"status body {code}", status_code=code, headers=headers)

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse(request.query_params["to"], status_code=302)

    async def big(request: Request) -> Response:
        await record(request)
        kind = request.query_params.get("kind", "text")
        if kind == "json":
            payload = b'{"data": "' + b"a" * BIG_BODY_BYTES + b'"}'
            return Response(payload, media_type="application/json")
        return Response(b"a" * BIG_BODY_BYTES, media_type="text/plain")

    async def slow(request: Request) -> Response:
        await record(request)
        await asyncio.sleep(min(float(request.query_params.get("s", "1")), 5.0))
        return PlainTextResponse("late")

    async def bad_json(request: Request) -> Response:
        await record(request)
        return Response(b"{not json", media_type="application/json")

    return Starlette(
        routes=[
            Route("/echo", echo, methods=ALL_METHODS),
            Route("/echo/{name}", echo, methods=ALL_METHODS),  # a path of one's own per test
            Route("/text", text),
            Route("/status/{code}", status, methods=ALL_METHODS),
            Route("/reflect/{code}", reflect, methods=ALL_METHODS),
            Route("/redirect", redirect),
            Route("/big", big),
            Route("/slow", slow),
            Route("/bad-json", bad_json),
        ]
    )


@contextmanager
def running_server() -> Iterator[LocalServer]:
    """Serve the test app on a free 127.0.0.1 port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = LocalServer(base_url=f"http://127.0.0.1:{port}")
    config = uvicorn.Config(_app(server), log_level="warning", lifespan="off")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("local test server did not start")
        time.sleep(0.01)
    try:
        yield server
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


def loopback_client(allowlist: str = "127.0.0.1", **kwargs: float) -> httpx.AsyncClient:
    """A guarded client that may reach the local test server (and nothing else internal)."""
    return build_http_client(EgressPolicy.from_env(allowlist), **kwargs)


def make_ctx(client: httpx.AsyncClient, node_id: str = "step") -> NodeContext:
    return NodeContext(
        run_id="run-1",
        workflow_id="wf-1",
        node_id=node_id,
        attempt=1,
        http=client,
        logger=logging.getLogger("tests.nodes"),
    )
