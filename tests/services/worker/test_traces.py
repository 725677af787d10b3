"""The worker's spans, exported over OTLP to a real receiver: a run span per delivery, a child
of the job's traceparent, and a span per node, with the outcome of each.

Jobs are put on the queue directly (as ingest would) with a traceparent we chose, so the
parent of the run span is known; tests/e2e/test_traces.py follows one webhook through every
service.
"""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from scripts.localinfra import stop_process
from shared.ids import uuid7
from shared.telemetry import (
    NODE_ATTEMPTS,
    NODE_ID,
    NODE_STATUS,
    NODE_TYPE,
    RUN_ATTEMPT,
    RUN_ID,
    RUN_STATUS,
    WORKFLOW_ID,
    WORKFLOW_VERSION,
)
from tests.fixtures.otlp import ExportedSpan, OtlpReceiver, running_otlp_receiver
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.conftest import log_text
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_run,
    run_job,
    start_worker,
    wait_run,
    worker_env,
)

SENDER_SPAN = "00f067aa0ba902b7"


def parent_traceparent() -> tuple[str, str]:
    """A fresh trace for each test: (trace id, traceparent of a span in it)."""
    trace_id = uuid7().hex  # 32 hex digits, never all zero
    return trace_id, f"00-{trace_id}-{SENDER_SPAN}-01"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as started:
        yield started


@pytest.fixture(scope="module")
def traced_env(
    infra: Infra, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return worker_env(
        infra.database_url,
        infra.redis_url,
        tmp_path_factory.mktemp("traced-worker-data"),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_BSP_SCHEDULE_DELAY="100",  # ms: spans leave within a moment of ending
    )


@pytest.fixture(scope="module")
def traced_worker(
    traced_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    service = start_worker(traced_env, tmp_path_factory.mktemp("traced-worker-logs"))
    yield service
    stop_process(service.proc, timeout=20)


@pytest.fixture
async def traced_queue(
    infra: Infra, traced_env: dict[str, str], traced_worker: ServiceProcess
) -> AsyncIterator[Queue]:
    jobs = Queue(infra.redis_url, traced_env["AUTOMATEOS_QUEUE_NAME"])
    yield jobs
    await jobs.close()


def run_trace(
    receiver: OtlpReceiver, run_id: str, nodes: int, deadline_s: float = 20
) -> tuple[ExportedSpan, list[ExportedSpan]]:
    """The run span of `run_id` and its `nodes` node spans, in the order they started."""

    def find(spans: list[ExportedSpan]) -> tuple[ExportedSpan, list[ExportedSpan]] | None:
        runs = [s for s in spans if s.name == "run" and s.attributes.get(RUN_ID) == run_id]
        if not runs:
            return None
        children = [s for s in spans if s.parent_span_id == runs[0].span_id]
        return (runs[0], children) if len(children) >= nodes else None

    found = find(receiver.wait_for(lambda spans: find(spans) is not None, deadline_s))
    assert found is not None
    run, children = found
    assert len(children) == nodes, children
    return run, children


async def start_run(
    db: AsyncEngine, queue: Queue, nodes: list[dict[str, Any]], traceparent: str | None
) -> str:
    workflow = await create_workflow(db, await create_user(db), nodes)
    job = run_job(workflow, {"id": "A-1"})
    job["traceparent"] = traceparent
    return await queue.put(job)


class TestRunSpan:
    async def test_is_a_child_of_the_jobs_traceparent_and_parents_every_node(
        self,
        db: AsyncEngine,
        traced_queue: Queue,
        receiver: OtlpReceiver,
        api: LocalApi,
        traced_worker: ServiceProcess,
    ) -> None:
        trace_id, traceparent = parent_traceparent()
        path = f"/echo/traced-{trace_id}"
        nodes: list[dict[str, Any]] = [
            {
                "id": "shape",
                "type": "transform",
                "params": {"values": {"id": "{{ trigger.body.id }}"}},
            },
            {
                "id": "call",
                "type": "http_request",
                "params": {"method": "POST", "url": api.url(path), "json": {}},
            },
        ]
        run_id = await start_run(db, traced_queue, nodes, traceparent)
        assert (await wait_run(db, run_id))["status"] == "succeeded"

        run, (shape, call) = run_trace(receiver, run_id, nodes=2)
        assert (run.service, run.kind) == ("worker", "CONSUMER")
        assert (run.trace_id, run.parent_span_id) == (trace_id, SENDER_SPAN)
        assert run.attributes[WORKFLOW_ID] == str(await _workflow_of(db, run_id))
        assert run.attributes[WORKFLOW_VERSION] == 1
        assert run.attributes[RUN_ATTEMPT] == 1
        assert run.attributes[RUN_STATUS] == "succeeded"
        assert run.status == "UNSET"

        assert [s.name for s in (shape, call)] == ["node transform", "node http_request"]
        assert all(s.trace_id == trace_id and s.kind == "INTERNAL" for s in (shape, call))
        assert call.attributes == {
            NODE_ID: "call",
            NODE_TYPE: "http_request",
            NODE_ATTEMPTS: 1,
            NODE_STATUS: "succeeded",
        }

        # The outgoing request carries the http_request node's span.
        [hit] = api.hits_for(path)
        assert hit.headers["traceparent"].split("-")[1:3] == [trace_id, call.span_id]

        # Log lines written during the run carry its trace id.
        lines = [
            json.loads(line) for line in log_text(traced_worker).splitlines() if run_id in line
        ]
        finished = [line for line in lines if line.get("msg") == "run succeeded"]
        assert finished
        assert finished[0]["trace_id"] == trace_id

    async def test_without_a_traceparent_the_run_starts_a_trace(
        self, db: AsyncEngine, traced_queue: Queue, receiver: OtlpReceiver
    ) -> None:
        nodes = [{"id": "note", "type": "log", "params": {"message": "hi"}}]
        run_id = await start_run(db, traced_queue, nodes, None)
        await wait_run(db, run_id)
        run, [note] = run_trace(receiver, run_id, nodes=1)
        assert run.parent_span_id is None
        assert note.trace_id == run.trace_id


class TestNodeOutcomes:
    async def test_a_failed_node_records_its_error_and_fails_the_run_span(
        self, db: AsyncEngine, traced_queue: Queue, receiver: OtlpReceiver, api: LocalApi
    ) -> None:
        nodes = [
            {"id": "call", "type": "http_request", "params": {"url": api.url("/status/404")}},
            {"id": "never", "type": "log", "params": {"message": "x"}},
        ]
        _, traceparent = parent_traceparent()
        run_id = await start_run(db, traced_queue, nodes, traceparent)
        run_row = await wait_run(db, run_id)
        assert run_row["status"] == "failed"

        # A skipped node never ran, so it has no span.
        run, [call] = run_trace(receiver, run_id, nodes=1)
        assert (run.status, run.attributes[RUN_STATUS]) == ("ERROR", "failed")
        assert run.status_message == run_row["error"]
        assert (call.status, call.attributes[NODE_STATUS]) == ("ERROR", "failed")
        assert "404" in call.status_message
        [(event, attributes)] = call.events
        assert event == "exception"
        assert "404" in attributes["exception.message"]
        assert attributes["exception.type"].endswith("NodeError")

    async def test_retries_are_events_on_one_node_span(
        self, db: AsyncEngine, traced_queue: Queue, receiver: OtlpReceiver, api: LocalApi
    ) -> None:
        path = f"/flaky/traced-{uuid7().hex}"
        nodes = [
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max": 3, "backoff": 0.01},
                "params": {"url": api.url(path + "?fail=2")},
            }
        ]
        run_id = await start_run(db, traced_queue, nodes, None)
        assert (await wait_run(db, run_id))["status"] == "succeeded"
        _, [call] = run_trace(receiver, run_id, nodes=1)
        assert call.attributes[NODE_ATTEMPTS] == 3
        assert call.status == "UNSET"
        retries = [attributes for name, attributes in call.events if name == "retry"]
        assert [r["attempt"] for r in retries] == [1, 2]
        # Every try carried the same node span.
        sent = {hit.headers["traceparent"].split("-")[2] for hit in api.hits_for(path)}
        assert sent == {call.span_id}

    async def test_a_node_cut_short_by_the_run_deadline_is_marked(
        self, db: AsyncEngine, traced_queue: Queue, receiver: OtlpReceiver
    ) -> None:
        nodes = [{"id": "slow", "type": "delay", "params": {"seconds": 4.5}}]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await traced_queue.put(run_job(workflow), job_timeout_s=3)
        assert (await wait_run(db, run_id, timeout=10))["status"] == "failed"
        run, [slow] = run_trace(receiver, run_id, nodes=1)
        assert run.status == "ERROR"
        assert (slow.status, slow.attributes[NODE_STATUS]) == ("ERROR", "failed")
        assert "deadline" in slow.status_message

    async def test_an_unknown_node_type_does_not_name_the_span(
        self, db: AsyncEngine, traced_queue: Queue, receiver: OtlpReceiver
    ) -> None:
        nodes = [{"id": "odd", "type": "no-such-type-123", "params": {}}]
        run_id = await start_run(db, traced_queue, nodes, None)
        await wait_run(db, run_id)
        _, [odd] = run_trace(receiver, run_id, nodes=1)
        assert odd.name == "node unknown"
        assert odd.attributes[NODE_TYPE] == "no-such-type-123"


class TestShutdown:
    async def test_spans_still_batched_are_exported_when_the_worker_stops(
        self, db: AsyncEngine, infra: Infra, tmp_path: Path
    ) -> None:
        with running_otlp_receiver() as receiver:
            env = worker_env(
                infra.database_url,
                infra.redis_url,
                tmp_path / "data",
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
                OTEL_BSP_SCHEDULE_DELAY="600000",  # ms: nothing leaves before the shutdown
            )
            worker = start_worker(env, tmp_path / "logs")
            queue = Queue(infra.redis_url, env["AUTOMATEOS_QUEUE_NAME"])
            try:
                nodes = [{"id": "note", "type": "log", "params": {"message": "bye"}}]
                run_id = await start_run(db, queue, nodes, None)
                await wait_run(db, run_id)
                assert receiver.spans() == []
                worker.proc.send_signal(signal.SIGTERM)
                worker.proc.wait(timeout=20)
            finally:
                await queue.close()
                stop_process(worker.proc, timeout=20)
            run_trace(receiver, run_id, nodes=1, deadline_s=5)


async def _workflow_of(db: AsyncEngine, run_id: str) -> Any:
    run = await fetch_run(db, run_id)
    assert run is not None
    return run["workflow_id"]
