"""A credential's plaintext reaches the server it is meant for and nothing else: not the
database (pg_dump), not Redis, not a log line, not an API answer, even when runs fail and the
server quotes it back."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import zlib
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.servers import Infra
from tests.fixtures.stack import Stack
from tests.shared.nodes.local_http import LocalServer

TOKEN = "tok" + secrets.token_hex(12)
SIGNING = "sig" + secrets.token_hex(12)
PASSWORD = "pwd" + secrets.token_hex(12)
HOOK_SECRET = "hks" + secrets.token_hex(12)
BASIC = base64.b64encode(f"ada:{PASSWORD}".encode()).decode()
PLAINTEXTS = {"token": TOKEN, "secret": SIGNING, "password": PASSWORD, "basic": BASIC}
PLAINTEXTS_WITH_HOOK = {**PLAINTEXTS, "webhook secret": HOOK_SECRET}


def _redis_values(client: redis.Redis) -> list[bytes]:
    """Every value in Redis, job payloads decompressed (RQ zlib-compresses them)."""
    values: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            items = [client.get(key) or b""]
        elif kind == "hash":
            items = [*client.hgetall(key).keys(), *client.hgetall(key).values()]
        elif kind == "list":
            items = client.lrange(key, 0, -1)
        elif kind == "set":
            items = list(client.smembers(key))
        elif kind == "zset":
            items = client.zrange(key, 0, -1)
        else:
            items = []
        values.append(key)
        for item in items:
            values.append(item)
            with contextlib.suppress(zlib.error):
                values.append(zlib.decompress(item))
    return values


def _leaks(text: str, plaintexts: dict[str, str] = PLAINTEXTS_WITH_HOOK) -> list[str]:
    return [name for name, value in plaintexts.items() if value in text]


@pytest.fixture
def runs(stack: Stack, user: ApiUser, echo: LocalServer) -> list[dict[str, Any]]:
    """One run that succeeds and one that fails, both using every kind of credential."""
    with user.client("workflows") as api:
        for name, type_, data in (
            ("api", "bearer", {"token": TOKEN}),
            ("signing", "secret", {"value": SIGNING}),
            ("legacy", "basic", {"username": "ada", "password": PASSWORD}),
        ):
            response = api.post("/credentials", json={"name": name, "type": type_, "data": data})
            assert response.status_code == 201, response.text
    good = create_workflow(
        user,
        [
            {
                "id": "call",
                "type": "http_request",
                "params": {
                    "method": "POST",
                    "url": echo.url("/echo/credentials"),
                    "credential": "api",
                    "json": {"sig": "{{ secrets.signing }}", "id": "{{ trigger.body.id }}"},
                },
            },
            {
                "id": "copy",
                "type": "transform",
                "params": {"values": {"seen": "{{ steps.call.body }}"}},
            },
            {
                "id": "note",
                "type": "log",
                "params": {"message": "server saw {{ steps.call.body.body }}"},
            },
        ],
    )
    bad = create_workflow(
        user,
        [
            {
                "id": "call",
                "type": "http_request",
                "params": {
                    "method": "POST",
                    "url": echo.url("/reflect/401"),
                    "credential": "legacy",
                    "json": {"sig": "{{ secrets.signing }}"},
                },
            }
        ],
        trigger={"type": "webhook", "signature": {"scheme": "hmac-sha256", "secret": HOOK_SECRET}},
    )
    body = json.dumps({"id": "A-1"}).encode()
    signature = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        first = ingest.post(hook_path(good), content=body)
        second = ingest.post(hook_path(bad), content=body, headers={"X-Signature-256": signature})
    assert first.status_code == 202, first.text
    assert second.status_code == 202, second.text
    done = [wait_for_run(user, first.json()["run_id"]), wait_for_run(user, second.json()["run_id"])]
    assert [run["status"] for run in done] == ["succeeded", "failed"]
    return done


class TestPlaintextGoesOnlyWhereItIsSent:
    def test_the_receiving_server_got_the_real_values(
        self, runs: list[dict[str, Any]], echo: LocalServer
    ) -> None:
        sent = {path: headers for path, headers in echo.headers}
        assert sent["/echo/credentials"]["authorization"] == f"Bearer {TOKEN}"
        assert sent["/reflect/401"]["authorization"] == f"Basic {BASIC}"

    def test_run_records_show_placeholders(self, runs: list[dict[str, Any]]) -> None:
        good, bad = runs
        call = good["steps"][0]
        assert call["input"]["credential"] == "[credential api]"
        assert call["input"]["json"]["sig"] == "[credential signing]"
        assert "[credential signing]" in json.dumps(good["steps"][1]["output"]["seen"])
        assert "[credential" in bad["error"]
        assert _leaks(json.dumps(runs)) == []

    def test_no_api_answer_holds_a_value(self, runs: list[dict[str, Any]], user: ApiUser) -> None:
        answers = []
        with user.client("workflows") as api:
            answers.append(api.get("/credentials").text)
            for name in ("api", "signing", "legacy"):
                answers.append(api.get(f"/credentials/{name}").text)
            for run in runs:
                answers.append(api.get(f"/runs/{run['id']}").text)
                answers.append(api.get(f"/workflows/{run['workflow_id']}").text)
                answers.append(api.get(f"/workflows/{run['workflow_id']}/runs").text)
            answers.append(api.get("/workflows").text)
        assert _leaks("\n".join(answers)) == []

    def test_the_database_dump_holds_no_value(
        self, runs: list[dict[str, Any]], infra: Infra
    ) -> None:
        if infra.postgres is None:
            pytest.skip("pg_dump runs against the embedded PostgreSQL")
        dump = infra.postgres.dump(infra.database_url.rsplit("/", 1)[1])
        assert "[credential api]" in dump  # the dump does hold the run records
        assert _leaks(dump) == []

    def test_redis_holds_no_value(self, runs: list[dict[str, Any]], infra: Infra) -> None:
        client = redis.Redis.from_url(infra.redis_url)
        try:
            values = _redis_values(client)
        finally:
            client.close()
        assert values, "Redis is empty: nothing was checked"
        text = "\n".join(value.decode(errors="replace") for value in values)
        assert _leaks(text) == []

    def test_no_log_line_holds_a_value(self, runs: list[dict[str, Any]], stack: Stack) -> None:
        logs = "\n".join(
            service.log_path.read_text(errors="replace") for service in stack.services.values()
        )
        assert "server saw " in logs  # the log node did write its line
        assert _leaks(logs) == []
