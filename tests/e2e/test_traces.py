"""One webhook, one trace: ingest → queue → run → each node → the http_request's call.

Every service runs as a process exporting spans over OTLP/HTTP to a real receiver on
127.0.0.1; the assertions read the spans as a collector would get them. A manual run and a
retry from the workflows API are traced the same way, from the workflows service's span.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.ids import uuid7
from shared.telemetry import (
    HTTP_ROUTE,
    HTTP_STATUS_CODE,
    NODE_ID,
    NODE_TYPE,
    RUN_ID,
    WORKFLOW_ID,
)
from tests.conftest import ApiUser, register_user
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.otlp import ExportedSpan, OtlpReceiver, running_otlp_receiver
from tests.fixtures.servers import Infra
from tests.fixtures.stack import Stack, running_stack, stack_env
from tests.shared.nodes.local_http import LocalServer

SENDER_SPAN = "00f067aa0ba902b7"


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
    """auth, workflows, ingest and a worker, every one exporting its spans to `receiver`."""
    base = tmp_path_factory.mktemp("traced-stack")
    env = stack_env(infra.database_url, infra.redis_url, base / "data")
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.url
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100"  # ms: spans leave within a moment of ending
    components = ("auth", "workflows", "ingest", "worker")
    with running_stack(env, base, components, worker_processes=1) as stack:
        yield stack


@pytest.fixture
def traced_user(traced_stack: Stack) -> ApiUser:
    return register_user(traced_stack)


def two_nodes(echo: LocalServer, path: str) -> list[dict[str, Any]]:
    return [
        {"id": "shape", "type": "transform", "params": {"values": {"id": "{{ trigger.body.id }}"}}},
        {
            "id": "call",
            "type": "http_request",
            "params": {
                "method": "POST",
                "url": echo.url(path),
                "json": {"id": "{{ steps.shape.id }}"},
            },
        },
    ]


def run_spans(
    receiver: OtlpReceiver, run_id: str, entry_service: str
) -> tuple[ExportedSpan, ExportedSpan, list[ExportedSpan], list[ExportedSpan]]:
    """(entry span, run span, node spans, every span of the trace) once all have arrived."""

    def complete(spans: list[ExportedSpan]) -> bool:
        mine = [s for s in spans if s.attributes.get(RUN_ID) == run_id]
        runs = [s for s in mine if s.name == "run"]
        if not runs or not any(s.service == entry_service for s in mine):
            return False
        return sum(s.parent_span_id == runs[0].span_id for s in spans) == 2

    spans = receiver.wait_for(complete)
    [entry] = [
        s for s in spans if s.service == entry_service and s.attributes.get(RUN_ID) == run_id
    ]
    [run] = [s for s in spans if s.name == "run" and s.attributes.get(RUN_ID) == run_id]
    nodes = [s for s in spans if s.parent_span_id == run.span_id]
    trace = [s for s in spans if s.trace_id == entry.trace_id]
    return entry, run, nodes, trace


def sent_traceparent(echo: LocalServer, path: str) -> list[str]:
    [headers] = [headers for hit, headers in echo.headers if hit == path]
    return headers["traceparent"].split("-")


def everything_said(span: ExportedSpan) -> str:
    """Every name and value a span carries, as text."""
    return json.dumps([span.name, span.attributes, span.events, span.status_message], default=str)


class TestWebhookTrace:
    def test_one_webhook_is_one_connected_trace(
        self,
        traced_stack: Stack,
        traced_user: ApiUser,
        receiver: OtlpReceiver,
        echo: LocalServer,
    ) -> None:
        sender_trace = uuid7().hex
        path = f"/echo/{sender_trace}"
        workflow = create_workflow(traced_user, two_nodes(echo, path))
        token = hook_path(workflow).rsplit("/", 1)[1]
        with httpx.Client(base_url=traced_stack.url("ingest"), timeout=10) as ingest:
            accepted = ingest.post(
                hook_path(workflow),
                json={"id": "A-1"},
                headers={"traceparent": f"00-{sender_trace}-{SENDER_SPAN}-01"},
            )
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        assert wait_for_run(traced_user, run_id)["status"] == "succeeded"

        hook, run, nodes, trace = run_spans(receiver, run_id, "ingest")

        # One trace throughout, continuing the sender's.
        assert {s.trace_id for s in (hook, run, *nodes)} == {sender_trace}
        assert {s.span_id for s in trace} == {s.span_id for s in (hook, run, *nodes)}
        # ingest's span is the sender's child ...
        assert (hook.name, hook.kind, hook.parent_span_id) == (
            "POST /hooks/{token}",
            "SERVER",
            SENDER_SPAN,
        )
        assert hook.attributes[WORKFLOW_ID] == workflow["id"]
        assert hook.attributes[HTTP_ROUTE] == "/hooks/{token}"
        assert hook.attributes[HTTP_STATUS_CODE] == 202
        # ... the worker's run span is ingest's child, across the queue ...
        assert (run.service, run.kind, run.parent_span_id) == ("worker", "CONSUMER", hook.span_id)
        assert run.attributes[WORKFLOW_ID] == workflow["id"]
        # ... and each node is the run's child, in order.
        assert [(s.name, s.attributes[NODE_ID]) for s in nodes] == [
            ("node transform", "shape"),
            ("node http_request", "call"),
        ]
        call = nodes[1]
        assert call.attributes[NODE_TYPE] == "http_request"

        # The http_request node's call carries its span: the called service joins the trace.
        _, trace_id, parent_id, flags = sent_traceparent(echo, path)
        assert (trace_id, parent_id) == (sender_trace, call.span_id)
        assert int(flags, 16) & 0x01

        # The webhook token is a secret: no span of the trace names it.
        assert len(token) >= 20
        for span in trace:
            assert token not in everything_said(span), span

        # The worker's log lines for the run carry the trace id.
        worker_log = Path(traced_stack.services["worker"].log_path).read_text(errors="replace")
        lines = [json.loads(line) for line in worker_log.splitlines() if run_id in line]
        assert lines
        assert {line.get("trace_id") for line in lines} == {sender_trace}

    def test_without_a_sender_trace_ingest_starts_one(
        self,
        traced_stack: Stack,
        traced_user: ApiUser,
        receiver: OtlpReceiver,
        echo: LocalServer,
    ) -> None:
        path = f"/echo/{uuid7().hex}"
        workflow = create_workflow(traced_user, two_nodes(echo, path))
        with httpx.Client(base_url=traced_stack.url("ingest"), timeout=10) as ingest:
            run_id = ingest.post(hook_path(workflow), json={"id": "B-2"}).json()["run_id"]
        wait_for_run(traced_user, run_id)

        hook, run, nodes, _ = run_spans(receiver, run_id, "ingest")
        assert hook.parent_span_id is None
        assert run.parent_span_id == hook.span_id
        assert {s.trace_id for s in (run, *nodes)} == {hook.trace_id}
        assert sent_traceparent(echo, path)[1:3] == [hook.trace_id, nodes[1].span_id]


class TestApiRunTrace:
    def test_a_manual_run_is_traced_from_the_workflows_service(
        self,
        traced_user: ApiUser,
        receiver: OtlpReceiver,
        echo: LocalServer,
    ) -> None:
        path = f"/echo/{uuid7().hex}"
        workflow = create_workflow(traced_user, two_nodes(echo, path))
        with traced_user.client("workflows") as api:
            response = api.post(f"/workflows/{workflow['id']}/run", json={"id": "M-1"})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        assert wait_for_run(traced_user, run_id)["status"] == "succeeded"

        manual, run, nodes, _ = run_spans(receiver, run_id, "workflows")
        assert (manual.name, manual.kind, manual.parent_span_id) == (
            "POST /workflows/{workflow_id}/run",
            "SERVER",
            None,
        )
        assert manual.attributes[WORKFLOW_ID] == workflow["id"]
        assert manual.attributes[HTTP_STATUS_CODE] == 202
        assert (run.trace_id, run.parent_span_id) == (manual.trace_id, manual.span_id)
        assert all(s.trace_id == manual.trace_id for s in nodes)
        assert sent_traceparent(echo, path)[1:3] == [manual.trace_id, nodes[1].span_id]

    def test_a_retry_continues_the_callers_trace(
        self,
        traced_user: ApiUser,
        receiver: OtlpReceiver,
        echo: LocalServer,
    ) -> None:
        workflow = create_workflow(traced_user, two_nodes(echo, f"/echo/{uuid7().hex}"))
        with traced_user.client("workflows") as api:
            first = api.post(f"/workflows/{workflow['id']}/run", json={"id": "R-1"})
            wait_for_run(traced_user, first.json()["run_id"])
            caller_trace = uuid7().hex
            retried = api.post(
                f"/runs/{first.json()['run_id']}/retry",
                headers={"traceparent": f"00-{caller_trace}-{SENDER_SPAN}-01"},
            )
        assert retried.status_code == 202, retried.text
        run_id = retried.json()["run_id"]
        wait_for_run(traced_user, run_id)

        retry, run, _, _ = run_spans(receiver, run_id, "workflows")
        assert retry.name == "POST /runs/{run_id}/retry"
        assert (retry.trace_id, retry.parent_span_id) == (caller_trace, SENDER_SPAN)
        assert run.parent_span_id == retry.span_id
