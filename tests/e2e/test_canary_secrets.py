"""A canary in every kind of credential, used every way a node can use one, with failures and
retries forced: the canary (raw, base64, URL-encoded, reversed) then appears in no sink:
PostgreSQL (pg_dump), Redis (every key), any service's log, the exported OpenTelemetry spans and
any `/metrics`. Also the findings of the third audit one by one: a secret in a rejected URL
port (#3), a header credential on a redirect to another origin and `allowed_hosts` (#4), and
secrets outside the fields a request sends (#7)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import redis

from tests.conftest import ApiUser, register_user
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.e2e.test_credentials import _redis_values
from tests.fixtures.otlp import OtlpReceiver, running_otlp_receiver
from tests.fixtures.servers import Infra
from tests.fixtures.stack import Stack, running_stack, stack_env
from tests.shared.nodes.local_http import LocalServer, running_server

# `+`, `/` and `=` make every encoding of the canary differ from it.
CANARY = f"Cn4ry+{secrets.token_hex(10)}/x="
VALUES = {
    "bearer": f"bearer-{CANARY}",
    "basic": f"basic-{CANARY}",
    "header": f"header-{CANARY}",
    "secret": f"secret-{CANARY}",
    "port": f"9{secrets.randbelow(10**6)}{CANARY}",
}
BASIC_BLOB = base64.b64encode(f"ada:{VALUES['basic']}".encode()).decode()


def _forms(value: str) -> dict[str, str]:
    raw = value.encode()
    return {
        "raw": value,
        "base64": base64.b64encode(raw).decode(),
        "base64url": base64.urlsafe_b64encode(raw).decode(),
        "url-encoded": quote(value, safe=""),
        "url-encoded+": quote_plus(value),
        "reversed": value[::-1],
    }


FORBIDDEN = {
    f"{kind} {form}": text
    for kind, value in {**VALUES, "canary": CANARY}.items()
    for form, text in _forms(value).items()
} | {"basic blob": BASIC_BLOB}


def leaks(text: str) -> list[str]:
    return sorted(name for name, form in FORBIDDEN.items() if form in text)


@pytest.fixture(autouse=True)
def _needs_the_whole_stack() -> None:
    """Overrides the e2e check on the session's stack: this module runs its own, traced."""


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_stack(
    infra: Infra, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("canary-stack")
    env = stack_env(infra.database_url, infra.redis_url, base / "data")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"
    with running_stack(env, base, ("auth", "workflows", "ingest", "worker"), 1) as stack:
        yield stack


@pytest.fixture(scope="module")
def other_origin() -> Iterator[LocalServer]:
    """A second server: another port is another origin."""
    with running_server() as server:
        yield server


@pytest.fixture(scope="module")
def canary_user(traced_stack: Stack) -> Iterator[ApiUser]:
    user = register_user(traced_stack)
    with user.client("workflows") as api:
        for name, type_, data, hosts in (
            ("bearer", "bearer", {"token": VALUES["bearer"]}, None),
            ("basic", "basic", {"username": "ada", "password": VALUES["basic"]}, None),
            ("header", "header", {"name": "X-Api-Key", "value": VALUES["header"]}, None),
            ("secret", "secret", {"value": VALUES["secret"]}, None),
            ("port", "secret", {"value": VALUES["port"]}, None),
            ("fenced", "header", {"name": "X-Api-Key", "value": VALUES["header"]}, ["*.example"]),
        ):
            body: dict[str, Any] = {"name": name, "type": type_, "data": data}
            if hosts:
                body["allowed_hosts"] = hosts
            created = api.post("/credentials", json=body)
            assert created.status_code == 201, created.text
    yield user
    # This stack seals with keys of its own: what it sealed must not stay in the shared
    # database for later tests that re-encrypt everything under the session's keys.
    with user.client("workflows") as api:
        for workflow in api.get("/workflows", params={"limit": 100}).json()["items"]:
            api.delete(f"/workflows/{workflow['id']}")
        for credential in api.get("/credentials").json()["items"]:
            api.delete(f"/credentials/{credential['name']}")


def _call(node_id: str, **params: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "http_request", "params": params}


def _run(stack: Stack, user: ApiUser, nodes: list[dict[str, Any]]) -> str:
    """Start a run of a new workflow of `nodes`; its id (the runs go on side by side)."""
    workflow = create_workflow(user, nodes)
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        accepted = ingest.post(hook_path(workflow), json={"id": 1})
    assert accepted.status_code == 202, accepted.text
    run_id: str = accepted.json()["run_id"]
    return run_id


@pytest.fixture(scope="module")
def runs(
    traced_stack: Stack, canary_user: ApiUser, other_origin: LocalServer
) -> dict[str, dict[str, Any]]:
    """Every way a credential can be used, and the ways its use can fail."""
    with running_server() as echo:
        sent = {
            "url": echo.url("/echo/sent"),
            "headers": {"X-Sig": "{{ secrets.secret }}"},
            "query": {"k": "{{ secrets.secret }}"},
        }
        started = {
            "sent": _run(
                traced_stack,
                canary_user,
                [
                    _call(
                        "call",
                        method="POST",
                        credential="bearer",
                        **sent,
                        json={"s": "{{ secrets.secret }}"},
                    ),
                    {"id": "note", "type": "log", "params": {"message": "{{ steps.call }}"}},
                    {
                        "id": "copy",
                        "type": "transform",
                        "params": {"values": {"all": "{{ steps.call.body }}"}},
                    },
                ],
            ),
            "retried": _run(
                traced_stack,
                canary_user,
                [
                    {
                        **_call(
                            "call",
                            method="POST",
                            url=echo.url("/reflect/503"),
                            credential="basic",
                            body="{{ secrets.secret }}",
                        ),
                        "retry": {"max": 2, "backoff": 0.01},
                    }
                ],
            ),
            "rejected": _run(
                traced_stack,
                canary_user,
                [
                    _call(
                        "call",
                        url=echo.url("/reflect/401"),
                        credential="header",
                        query={"k": "{{ secrets.secret }}"},
                    )
                ],
            ),
            "bad port": _run(
                traced_stack,
                canary_user,
                [_call("call", url="http://127.0.0.1:{{ secrets.port }}/x")],
            ),
            "redirected": _run(
                traced_stack,
                canary_user,
                [
                    _call(
                        "call",
                        url=echo.url("/redirect"),
                        query={"to": other_origin.url("/echo/redirected")},
                        credential="header",
                        headers={"X-Sig": "{{ secrets.secret }}"},
                    )
                ],
            ),
            "fenced": _run(
                traced_stack,
                canary_user,
                [_call("call", url=echo.url("/echo/fenced"), credential="fenced")],
            ),
        }
        done = {name: wait_for_run(canary_user, run_id, 30) for name, run_id in started.items()}
        done["echo hits"] = {"paths": list(echo.hits)}
    return done


class TestEveryCredentialUse:
    def test_the_runs_ended_as_forced(self, runs: dict[str, dict[str, Any]]) -> None:
        statuses = {name: run["status"] for name, run in runs.items() if "status" in run}
        errors = {name: run.get("error") for name, run in runs.items()}
        assert statuses == {
            "sent": "succeeded",
            "retried": "failed",
            "rejected": "failed",
            "bad port": "failed",
            "redirected": "succeeded",
            "fenced": "failed",
        }, errors
        assert runs["retried"]["steps"][0]["attempt"] == 3

    def test_no_api_answer_holds_the_canary(
        self, runs: dict[str, dict[str, Any]], canary_user: ApiUser
    ) -> None:
        assert "[credential" in json.dumps(runs)
        assert leaks(json.dumps(runs)) == []

    def test_postgresql_holds_no_canary(self, runs: dict[str, Any], infra: Infra) -> None:
        if infra.postgres is None:
            pytest.skip("pg_dump runs against the embedded PostgreSQL")
        dump = infra.postgres.dump(infra.database_url.rsplit("/", 1)[1])
        assert "[credential secret]" in dump  # the dump does hold the run records
        assert leaks(dump) == []

    def test_redis_holds_no_canary(self, runs: dict[str, Any], infra: Infra) -> None:
        client = redis.Redis.from_url(infra.redis_url)
        try:
            values = _redis_values(client)
        finally:
            client.close()
        assert values
        assert leaks("\n".join(v.decode(errors="replace") for v in values)) == []

    def test_no_log_holds_the_canary(self, runs: dict[str, Any], traced_stack: Stack) -> None:
        logs = "\n".join(
            service.log_path.read_text(errors="replace")
            for service in traced_stack.services.values()
        )
        assert "retrying node" in logs  # the worker did log the forced retries
        assert leaks(logs) == []

    def test_no_exported_span_holds_the_canary(
        self, runs: dict[str, Any], receiver: OtlpReceiver
    ) -> None:
        spans = receiver.wait_for(lambda got: sum(s.name == "node http_request" for s in got) >= 6)
        assert any(s.status == "ERROR" for s in spans)
        raw = b"".join(body for _, body in receiver.requests)
        assert leaks(raw.decode(errors="replace")) == []

    def test_no_metrics_hold_the_canary(self, runs: dict[str, Any], traced_stack: Stack) -> None:
        pages = []
        for service in traced_stack.services.values():
            answer = httpx.get(f"{service.url}/metrics", timeout=10)
            assert answer.status_code == 200, service.name
            pages.append(answer.text)
        assert leaks("\n".join(pages)) == []


class TestFindings:
    def test_a_secret_in_a_rejected_url_port_is_not_in_the_error(
        self, runs: dict[str, dict[str, Any]]
    ) -> None:
        # #3: the validation error of the rendered URL quoted the port (the secret) whole.
        error = runs["bad port"]["steps"][0]["error"]
        assert error.startswith("params invalid after rendering: url"), error
        assert leaks(error) == []
        assert runs["bad port"]["steps"][0]["input"]["url"] == "[credential port]"

    def test_header_credentials_stay_with_their_origin_on_a_redirect(
        self, runs: dict[str, dict[str, Any]], other_origin: LocalServer
    ) -> None:
        # #4: httpx dropped only Authorization on a redirect to another origin.
        [headers] = [h for path, h in other_origin.headers if path == "/echo/redirected"]
        assert "x-api-key" not in headers
        assert "x-sig" not in headers

    def test_a_credential_is_not_sent_outside_its_allowed_hosts(
        self, runs: dict[str, dict[str, Any]]
    ) -> None:
        error = runs["fenced"]["steps"][0]["error"]
        assert "may be sent only to *.example" in error
        assert "/echo/fenced" not in runs["echo hits"]["paths"]  # nothing was sent

    @pytest.mark.parametrize(
        ("node", "field"),
        [
            ({"type": "log", "params": {"message": "{{ secrets.secret }}"}}, "message"),
            (
                {
                    "type": "transform",
                    "params": {"values": {"v": "{{ secrets.secret | reverse }}"}},
                },
                "values.v",
            ),
            (
                {
                    "type": "http_request",
                    "params": {"url": "http://x.example/", "body": "{{ secrets.secret | upper }}"},
                },
                "body",
            ),
            (
                {
                    "type": "http_request",
                    "params": {"url": "http://x.example/{{ secrets.secret[1:] }}"},
                },
                "url",
            ),
            (
                {
                    "type": "http_request",
                    "params": {
                        "url": "http://x.example/",
                        "json": {"a": "{{ secrets.secret | list }}"},
                    },
                },
                "json.a",
            ),
            (
                {
                    "type": "http_request",
                    "params": {"url": "http://x.example/", "timeout_s": "{{ secrets.secret }}"},
                },
                "timeout_s",
            ),
        ],
    )
    def test_secrets_outside_what_a_request_sends_are_refused_at_save(
        self, canary_user: ApiUser, node: dict[str, Any], field: str
    ) -> None:
        # #7: every transformation passed, because scrubbing knew only the literal value.
        with canary_user.client("workflows") as api:
            answer = api.post("/workflows", json={"name": "leak", "nodes": [{"id": "n", **node}]})
        assert answer.status_code == 422, answer.text
        [issue] = answer.json()["detail"]
        assert issue["loc"] == ["body", "nodes", "n", "params", *field.split(".")]
