"""Real traffic for the metrics test: every webhook outcome, runs that succeed, stop and fail.

It goes through the public API only (register, login, create workflows, POST /hooks/<token>),
counts exactly what it sent, and remembers every id, token and key it used so the test can
prove none of them became a metric label.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from tests.conftest import ApiUser, register_user
from tests.fixtures.stack import Stack

# Small so the 413s cost kilobytes; the stack runs with AUTOMATEOS_MAX_BODY_BYTES set to it.
MAX_BODY_BYTES = 64 * 1024
SIGNING_SECRET = "metrics-test-signing-secret-" + "x" * 8
TERMINAL = {"succeeded", "failed", "cancelled"}

# How many deliveries of each kind; the test compares Prometheus's counters with these.
OK, STOPPED, FAILING, DUPLICATED = 170, 15, 25, 15
SIGNED, BAD_SIGNATURE, UNKNOWN, TOO_LARGE, INACTIVE, BAD_REQUEST = 20, 20, 20, 10, 5, 5


class _Echo(BaseHTTPRequestHandler):
    """What the http_request node calls: /fail answers 500 (retryable), anything else 200."""

    def do_GET(self) -> None:
        status = 500 if self.path.startswith("/fail") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def echo_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 for the http_request node (the stack allows 127.0.0.1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Sent:
    """What the traffic did: outcome counts, expected runs, and every secret-ish string used."""

    outcomes: Counter[str] = field(default_factory=Counter)
    run_ids: dict[str, set[str]] = field(default_factory=dict)  # workflow id -> run ids
    failing_runs: int = 0
    sensitive: set[str] = field(default_factory=set)
    finished_at: float = 0.0

    @property
    def runs(self) -> int:
        return sum(len(ids) for ids in self.run_ids.values())


def _main_workflow(echo_url: str) -> dict[str, Any]:
    return {
        "name": "metrics: main",
        "nodes": [
            {
                "id": "shape",
                "type": "transform",
                "params": {"values": {"amount": "{{ trigger.body.amount }}"}},
            },
            {
                "id": "only_positive",
                "type": "filter",
                "params": {"all": [{"left": "{{ steps.shape.amount }}", "op": "gte", "right": 0}]},
            },
            {
                "id": "call",
                "type": "http_request",
                "params": {"method": "GET", "url": echo_url + "/{{ trigger.body.path }}"},
                "retry": {"max": 1, "backoff": 0.05},
            },
            {"id": "done", "type": "log", "params": {"message": "order {{ trigger.body.id }}"}},
        ],
    }


def _create(user: ApiUser, definition: dict[str, Any]) -> dict[str, Any]:
    with user.client("workflows") as client:
        created = client.post("/workflows", json=definition)
    assert created.status_code == 201, created.text
    workflow: dict[str, Any] = created.json()
    return workflow


def send_traffic(stack: Stack, echo_url: str) -> Sent:
    """Register, create three workflows and send a few hundred webhooks of every kind."""
    sent = Sent()
    user = register_user(stack)
    sent.sensitive.update({user.email, user.tokens["access_token"], user.tokens["refresh_token"]})
    main = _create(user, _main_workflow(echo_url))
    signed = _create(
        user,
        {
            "name": "metrics: signed",
            "trigger": {
                "type": "webhook",
                "signature": {"scheme": "github", "secret": SIGNING_SECRET},
            },
            "nodes": [{"id": "note", "type": "log", "params": {"message": "signed"}}],
        },
    )
    inactive = _create(
        user,
        {
            "name": "metrics: inactive",
            "active": False,
            "nodes": [{"id": "note", "type": "log", "params": {"message": "never"}}],
        },
    )
    for workflow in (main, signed, inactive):
        sent.sensitive.add(workflow["id"])
        sent.sensitive.add(workflow["webhook_url"].rsplit("/", 1)[1])
        sent.run_ids[workflow["id"]] = set()
    sent.sensitive.add(SIGNING_SECRET)

    requests: list[tuple[str, Callable[[httpx.Client], httpx.Response], str | None]] = []

    def hook(
        workflow: dict[str, Any], body: bytes, headers: dict[str, str] | None = None
    ) -> Callable[[httpx.Client], httpx.Response]:
        url = workflow["webhook_url"]
        merged = {"content-type": "application/json", **(headers or {})}
        return lambda client: client.post(url, content=body, headers=merged)

    def order(path: str, amount: int) -> bytes:
        return json.dumps({"id": secrets.token_hex(4), "amount": amount, "path": path}).encode()

    for _ in range(OK):
        requests.append(("accepted", hook(main, order("ok", 120)), main["id"]))
    for _ in range(STOPPED):
        requests.append(("accepted", hook(main, order("ok", -1)), main["id"]))
    for _ in range(FAILING):
        requests.append(("accepted", hook(main, order("fail", 5)), main["id"]))
    sent.failing_runs = FAILING
    keys = [f"delivery-{uuid.uuid4()}" for _ in range(DUPLICATED)]
    sent.sensitive.update(keys)
    for key in keys:
        requests.append(
            ("accepted", hook(main, order("ok", 1), {"Idempotency-Key": key}), main["id"])
        )
    for _ in range(SIGNED):
        body = order("ok", 1)
        digest = hmac.new(SIGNING_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={digest}"}
        requests.append(("accepted", hook(signed, body, headers), signed["id"]))
    for _ in range(BAD_SIGNATURE):
        headers = {"X-Hub-Signature-256": "sha256=" + secrets.token_hex(32)}
        requests.append(("bad_signature", hook(signed, order("ok", 1), headers), None))
    for _ in range(UNKNOWN):
        token = secrets.token_urlsafe(32)
        sent.sensitive.add(token)
        stranger = {"webhook_url": f"{stack.url('ingest')}/hooks/{token}"}
        requests.append(("unknown", hook(stranger, b"{}"), None))
    for _ in range(TOO_LARGE):
        requests.append(("too_large", hook(main, b"x" * (MAX_BODY_BYTES + 1)), None))
    for _ in range(INACTIVE):
        requests.append(("inactive", hook(inactive, order("ok", 1)), None))
    for _ in range(BAD_REQUEST):
        requests.append(("bad_request", hook(main, b'{"not": json'), None))

    expected_status = {
        "accepted": {202},
        "duplicate": {202},
        "bad_signature": {401},
        "unknown": {404},
        "too_large": {413},
        "inactive": {409, 410},
        "bad_request": {400, 422},
    }

    # Parallel, like real senders; the lock keeps the tallies exact.
    lock = threading.Lock()

    def deliver(item: tuple[str, Callable[[httpx.Client], httpx.Response], str | None]) -> None:
        outcome, send, workflow_id = item
        with httpx.Client(timeout=15) as client:
            response = send(client)
        assert response.status_code in expected_status[outcome], (
            outcome,
            response.status_code,
            response.text,
        )
        with lock:
            sent.outcomes[outcome] += 1
            if workflow_id is not None:
                run_id = response.json()["run_id"]
                sent.run_ids[workflow_id].add(run_id)
                sent.sensitive.add(run_id)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(deliver, requests))

    # The same keys again: each answers 202 with the first run id and starts nothing.
    with httpx.Client(timeout=15) as client:
        for key in keys:
            response = hook(main, order("ok", 1), {"Idempotency-Key": key})(client)
            assert response.status_code == 202, response.text
            assert response.json()["run_id"] in sent.run_ids[main["id"]]
            sent.outcomes["duplicate"] += 1

    # Paths that must never become labels: a raw unmatched path with an id in it, and a real
    # run id through a templated route.
    probe = str(uuid.uuid4())
    sent.sensitive.add(probe)
    with httpx.Client(timeout=15) as client:
        client.get(f"{stack.url('ingest')}/hooks/{main['webhook_url'].rsplit('/', 1)[1]}/{probe}")
        client.get(f"{stack.url('workflows')}/nope/{probe}")
    with user.client("workflows") as client:
        client.get(f"/runs/{next(iter(sent.run_ids[main['id']]))}")

    wait_for_runs(user, sent, deadline_s=120)
    sent.finished_at = time.time()
    return sent


def wait_for_runs(user: ApiUser, sent: Sent, deadline_s: float) -> None:
    """Poll the runs API until every accepted run has finished (bounded)."""
    end = time.monotonic() + deadline_s
    unfinished: dict[str, int] = {}
    with user.client("workflows") as client:
        while time.monotonic() < end:
            unfinished = {}
            for workflow_id, run_ids in sent.run_ids.items():
                if not run_ids:
                    continue
                finished = _finished_runs(client, workflow_id)
                if len(run_ids - finished):
                    unfinished[workflow_id] = len(run_ids - finished)
            if not unfinished:
                return
            time.sleep(0.5)
    raise TimeoutError(f"runs still unfinished after {deadline_s}s: {unfinished}")


def _finished_runs(client: httpx.Client, workflow_id: str) -> set[str]:
    finished: set[str] = set()
    cursor: str | None = None
    for _ in range(100):  # bounded: 100 pages of 100 runs is far more than we send
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/workflows/{workflow_id}/runs", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        finished.update(run["id"] for run in body["items"] if run["status"] in TERMINAL)
        cursor = body["next_cursor"]
        if not cursor:
            break
    return finished
