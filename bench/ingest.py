"""Ingest against the bare baseline: `python -m bench.ingest` (or `make bench-ingest`).

Starts an embedded Redis and two single-process HTTP servers on it:

- baseline: a bare FastAPI route that reads the body, `LPUSH`es it and answers 202 with a uuid;
- ingest:   the real service (`python -m services.ingest`), routing record written into Redis.

Both are driven by the same bounded load generator (wrk when installed, else a bare asyncio
HTTP/1.1 client in its own process) in alternating rounds, so a busy machine slows both alike;
the report gives requests/s, p50 and p99 per round, the medians, and the ratio
ingest/baseline. Optional variants send an `Idempotency-Key` (two Redis round trips) or a
GitHub signature (HMAC over the body).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as aioredis
import uvloop
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from scripts.localinfra import RedisServer, free_port, stop_process, wait_for_port
from shared.hooks import encode_record, hook_key, token_hash
from shared.queue import queue_key

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdefghijklmnopqrstuv"
SIGNING_SECRET = "bench-secret"
BASELINE_LIST = "bench:baseline"
QUEUE = "bench"
BODY = json.dumps(
    {
        "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "type": "order.created",
        "data": {"order": 42, "amount": 150.5, "currency": "eur", "customer": "cus_9s6XKzkNRiz8i3"},
    }
).encode()


# --- the baseline ----------------------------------------------------------------------------


def create_baseline_app() -> FastAPI:
    """The bare FastAPI + Redis LPUSH the issue measures ingest against (uvicorn factory)."""
    # A bounded pool that waits for a free connection: redis-py's default pool raises "Too many
    # connections" at a few hundred concurrent requests, which would measure the error path.
    pool = aioredis.BlockingConnectionPool.from_url(
        os.environ["REDIS_URL"], max_connections=64, timeout=10
    )
    client = aioredis.Redis(connection_pool=pool)
    app = FastAPI()

    @app.post("/hooks/{token}")
    async def hook(token: str, request: Request) -> JSONResponse:
        await client.lpush(BASELINE_LIST, await request.body())
        return JSONResponse({"run_id": str(uuid.uuid4())}, status_code=202)

    return app


# --- servers ---------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]


@contextmanager
def serving(name: str, argv: list[str], env: dict[str, str], port: int) -> Iterator[Server]:
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=sys.stderr
    )
    try:
        wait_for_port(port, 30, proc)
        yield Server(name, f"http://127.0.0.1:{port}", proc)
    finally:
        stop_process(proc, timeout=10)


def write_routing_record(client: redis.Redis, signed: bool) -> None:
    signature = {"scheme": "github", "secret": SIGNING_SECRET} if signed else None
    record = {
        "workflow_id": str(uuid.uuid4()),
        "owner_id": str(uuid.uuid4()),
        "version": 1,
        "active": True,
        "signature": signature,
    }
    client.set(hook_key(token_hash(TOKEN)), encode_record(record))  # type: ignore[arg-type]


# --- load generators -------------------------------------------------------------------------


@dataclass
class Result:
    requests: int
    seconds: float
    non_2xx: int
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


WRK_SCRIPT = """
local body = %(body)s
local extra = %(headers)s
local dedupe = %(dedupe)s
local nonce = %(nonce)s
local counter = 0
local threads = 0
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
for name, value in pairs(extra) do wrk.headers[name] = value end
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  if dedupe then
    -- unique across threads, requests and runs: each one is a new delivery
    counter = counter + 1
    wrk.headers["Idempotency-Key"] = string.format("%%s-%%d-%%d", nonce, tid, counter)
  end
  return wrk.format(nil, nil, nil, body)
end
function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %%d, "micros": %%d, "non_2xx": %%d, "errors": %%d, "p50": %%d, "p99": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal here


def run_wrk(url: str, headers: dict[str, str], dedupe: bool, args: argparse.Namespace) -> Result:
    script = WRK_SCRIPT % {
        "body": _lua_string(BODY.decode()),
        "headers": "{"
        + ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        + "}",
        "dedupe": "true" if dedupe else "false",
        "nonce": _lua_string(uuid.uuid4().hex),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as file:
        file.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--timeout",
                "10s",
                "-s",
                file.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=args.duration + 60,
        ).stdout
    finally:
        os.unlink(file.name)
    line = next(line for line in reversed(out.splitlines()) if line.startswith("{"))
    data = json.loads(line)
    return Result(
        requests=data["requests"],
        seconds=data["micros"] / 1e6,
        non_2xx=data["non_2xx"],
        errors=data["errors"],
        p50_ms=data["p50"] / 1000,
        p99_ms=data["p99"] / 1000,
    )


async def _python_load(
    url: str,
    headers: dict[str, str],
    dedupe: bool,
    connections: int,
    duration: float,
    total: int = 0,
) -> dict[str, Any]:
    """Keep-alive HTTP/1.1 over raw asyncio streams, one request in flight per connection.

    httpx measured here tops out near 200 req/s with 50 connections: it would measure itself,
    not the servers. A pre-built request on a bare stream is ~20x cheaper per request.
    With `total`, exactly that many requests are sent (bench.compare's "all N runs done"), and
    `duration` is only a deadline.
    """
    parsed = httpx.URL(url)
    host, port = parsed.host, parsed.port or 80
    head = (
        f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
        + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    ).encode()
    latencies: list[float] = []
    counts = {"non_2xx": 0, "errors": 0}
    deadline = time.perf_counter() + duration
    left = [total]

    def another() -> bool:
        if time.perf_counter() >= deadline:
            return False
        if total:
            left[0] -= 1
            return left[0] >= 0
        return True

    async def user() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        while another():
            key = f"Idempotency-Key: {uuid.uuid4().hex}\r\n".encode() if dedupe else b""
            start = time.perf_counter()
            try:
                writer.write(head + key + b"\r\n" + BODY)
                status = int((await reader.readline()).split()[1])
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                    elif name.lower() == b"connection" and b"close" in value.lower():
                        close = True
                await reader.readexactly(length)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - start)
            if not 200 <= status < 300:
                counts["non_2xx"] += 1
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(user() for _ in range(connections)))
    seconds = time.perf_counter() - started
    latencies.sort()

    def pct(q: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": len(latencies),
        "seconds": seconds,
        **counts,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def run_python(
    url: str, headers: dict[str, str], dedupe: bool, args: argparse.Namespace, total: int = 0
) -> Result:
    """The fallback generator, in its own process so it does not share the servers' GIL."""
    spec = {
        "url": url,
        "headers": headers,
        "dedupe": dedupe,
        "connections": args.connections,
        "duration": args.duration,
        "total": total,
    }
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--load-worker", json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=args.duration + 60,
    ).stdout
    return Result(**json.loads(out.strip().splitlines()[-1]))


# --- the run ---------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    server: str
    headers: dict[str, str]
    dedupe: bool = False


def load(url: str, variant: Variant, args: argparse.Namespace) -> Result:
    runner = run_wrk if args.client == "wrk" else run_python
    return runner(f"{url}/hooks/{TOKEN}", variant.headers, variant.dedupe, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per round")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per variant")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--dedupe", action="store_true", help="also: a unique Idempotency-Key each")
    parser.add_argument("--signed", action="store_true", help="also: a GitHub signature each")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument("--load-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.load_worker:
        spec = json.loads(args.load_worker)
        print(json.dumps(uvloop.run(_python_load(**spec))))
        return 0
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    args.duration = max(1, round(args.duration)) if args.client == "wrk" else args.duration

    base = Path(tempfile.mkdtemp(prefix="automateos-bench-"))
    redis_server = RedisServer(base / "redis", durable=False).start()
    client = redis.Redis.from_url(redis_server.url)
    env = {
        "REDIS_URL": redis_server.url,
        "AUTOMATEOS_DATA_DIR": str(base / "data"),
        "AUTOMATEOS_QUEUE_NAME": QUEUE,
        # A Redis miss must never reach for a workflows service that is not running.
        "AUTOMATEOS_WORKFLOWS_URL": f"http://127.0.0.1:{free_port()}",
        # One webhook as fast as it goes: the per-webhook bucket and the backlog bound
        # (docs/flow-control.md) would measure themselves instead of the front door.
        "AUTOMATEOS_INGEST_RATE_PER_S": "1000000",
        "AUTOMATEOS_INGEST_RATE_BURST": "1000000",
        "AUTOMATEOS_INGEST_MAX_BACKLOG": "100000000",
    }
    uvicorn_args = ["--no-access-log", "--log-level", "warning", "--factory"]
    baseline_port, ingest_port = free_port(), free_port()
    variants = [Variant("baseline", "baseline", {}), Variant("ingest", "ingest", {})]
    if args.dedupe:
        variants.append(Variant("ingest+idempotency-key", "ingest", {}, dedupe=True))
    if args.signed:
        digest = hmac.new(SIGNING_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
        variants.append(
            Variant(
                "ingest+github-signature", "ingest", {"X-Hub-Signature-256": f"sha256={digest}"}
            )
        )
    results: dict[str, list[Result]] = {variant.name: [] for variant in variants}
    print(
        f"client={args.client} connections={args.connections} duration={args.duration}s "
        f"rounds={args.rounds} cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f}",
        flush=True,
    )
    try:
        with (
            serving(
                "baseline",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "bench.ingest:create_baseline_app",
                    "--port",
                    str(baseline_port),
                    *uvicorn_args,
                ],
                env,
                baseline_port,
            ) as baseline,
            serving(
                "ingest",
                [
                    sys.executable,
                    "-m",
                    "services.ingest",
                    "--port",
                    str(ingest_port),
                    "--log-level",
                    "warning",
                ],
                env,
                ingest_port,
            ) as ingest,
        ):
            servers = {"baseline": baseline.url, "ingest": ingest.url}
            for variant in variants:
                # Each variant gets a fresh record: the signed one differs.
                write_routing_record(client, signed=bool(variant.headers))
                warm = argparse.Namespace(**{**vars(args), "duration": max(1, round(args.warmup))})
                load(servers[variant.server], variant, warm)
            for round_no in range(1, args.rounds + 1):
                for variant in variants:
                    write_routing_record(client, signed=bool(variant.headers))
                    client.delete(BASELINE_LIST, queue_key(QUEUE))
                    result = load(servers[variant.server], variant, args)
                    stored = client.llen(
                        BASELINE_LIST if variant.server == "baseline" else queue_key(QUEUE)
                    )
                    results[variant.name].append(result)
                    print(
                        f"round {round_no} {variant.name:<26} {result.rps:8.0f} req/s  "
                        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                        f"non-2xx {result.non_2xx}  errors {result.errors}  stored {stored}",
                        flush=True,
                    )
    finally:
        client.close()
        redis_server.stop()
        shutil.rmtree(base, ignore_errors=True)

    summary = report(results)
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def report(results: dict[str, list[Result]]) -> dict[str, Any]:
    """Print the medians and the ratios to the baseline; return them as a dict."""
    summary: dict[str, Any] = {}
    print("\nmedian over rounds:")
    for name, rounds in results.items():
        summary[name] = {
            "rps": statistics.median(r.rps for r in rounds),
            "p50_ms": statistics.median(r.p50_ms for r in rounds),
            "p99_ms": statistics.median(r.p99_ms for r in rounds),
        }
        line = summary[name]
        print(
            f"  {name:<26} {line['rps']:8.0f} req/s  p50 {line['p50_ms']:6.2f} ms  "
            f"p99 {line['p99_ms']:6.2f} ms"
        )
    baseline = summary["baseline"]["rps"]
    for name in summary:
        if name != "baseline":
            summary[name]["ratio_to_baseline"] = summary[name]["rps"] / baseline
            print(f"  ratio {name}/baseline: {summary[name]['ratio_to_baseline']:.2f}")
    return summary


if __name__ == "__main__":
    raise SystemExit(main())
