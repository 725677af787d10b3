"""shared.telemetry: the trace crosses the queue, exports only when told to, survives bad input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from shared import telemetry
from shared.telemetry import (
    RUN_ID,
    configure_tracing,
    context_from_traceparent,
    current_traceparent,
    flush_tracing,
    inject_headers,
    tracer,
    tracing_exporter,
)

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)


@pytest.fixture(autouse=True)
def fresh_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test configures tracing from scratch: OTel's global provider is set-once per process."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(telemetry, "_provider", None)
    monkeypatch.setattr(telemetry, "_exporter", None)
    yield
    provider = telemetry._provider
    if provider is not None:
        provider.shutdown()  # stops the batch thread of an exporting provider


def capture() -> InMemorySpanExporter:
    """Configure tracing and record every finished span in memory."""
    configure_tracing("test")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    spans = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return spans


def by_name(spans: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans.get_finished_spans()}


class TestTraceAcrossTheQueue:
    def test_worker_span_is_a_child_of_the_ingest_span(self):
        spans = capture()
        with tracer("ingest").start_as_current_span("webhook"):
            traceparent = current_traceparent()

        # The worker runs the job in another thread (a fresh contextvars context), like another
        # process: only the string crosses.
        def worker() -> None:
            parent = context_from_traceparent(traceparent)
            with tracer("worker").start_as_current_span("run", context=parent) as run:
                run.set_attribute(RUN_ID, "r1")
                with tracer("worker").start_as_current_span("node"):
                    pass

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join(10)

        found = by_name(spans)
        webhook, run, node = found["webhook"], found["run"], found["node"]
        assert run.parent is not None
        assert node.parent is not None
        assert run.parent.span_id == webhook.context.span_id
        assert run.context.trace_id == webhook.context.trace_id
        assert node.parent.span_id == run.context.span_id
        assert node.context.trace_id == webhook.context.trace_id

    def test_run_span_ignores_whatever_span_is_current_in_the_worker(self):
        spans = capture()
        with tracer("ingest").start_as_current_span("webhook"):
            traceparent = current_traceparent()
        with (
            tracer("worker").start_as_current_span("leftover"),
            tracer("worker").start_as_current_span(
                "run", context=context_from_traceparent(traceparent)
            ),
        ):
            pass

        found = by_name(spans)
        assert found["run"].parent is not None
        assert found["run"].parent.span_id == found["webhook"].context.span_id

    def test_traceparent_is_w3c(self):
        capture()
        with tracer("ingest").start_as_current_span("webhook") as span:
            traceparent = current_traceparent()
            context = span.get_span_context()
        assert traceparent is not None
        version, trace_id, span_id, flags = traceparent.split("-")
        assert (version, trace_id, span_id) == (
            "00",
            f"{context.trace_id:032x}",
            f"{context.span_id:016x}",
        )
        assert int(flags, 16) & 0x01  # sampled: the worker keeps recording the same trace

    def test_no_current_span_gives_no_traceparent(self):
        configure_tracing("test")
        assert current_traceparent() is None


class TestInvalidTraceparent:
    @pytest.mark.parametrize(
        "traceparent",
        [
            None,
            "",
            "garbage",
            "00-00000000000000000000000000000000-0000000000000000-01",  # all-zero ids
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # flags missing
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ],
    )
    def test_starts_a_new_root(self, traceparent):
        spans = capture()
        with (
            tracer("worker").start_as_current_span("leftover") as leftover,
            tracer("worker").start_as_current_span(
                "run", context=context_from_traceparent(traceparent)
            ),
        ):
            pass

        run = by_name(spans)["run"]
        assert run.parent is None
        assert run.context.trace_id != leftover.get_span_context().trace_id


class TestExportConfiguration:
    def test_no_exporter_without_an_otlp_endpoint(self):
        configure_tracing("ingest")
        assert tracing_exporter() is None
        # Still a real provider: spans get ids for logs and the job's traceparent.
        with tracer("ingest").start_as_current_span("webhook"):
            assert current_traceparent() is not None

    @pytest.mark.parametrize(
        "variable", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    )
    def test_otlp_exporter_when_an_endpoint_is_set(self, monkeypatch, variable):
        monkeypatch.setenv(variable, "http://127.0.0.1:1/v1/traces")
        configure_tracing("ingest")
        assert isinstance(tracing_exporter(), OTLPSpanExporter)

    def test_sdk_disabled_wins_over_an_endpoint(self, monkeypatch):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        configure_tracing("ingest")
        assert tracing_exporter() is None
        with tracer("ingest").start_as_current_span("webhook"):
            assert current_traceparent() is None

    def test_traces_exporter_none_turns_export_off(self, monkeypatch):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        configure_tracing("ingest")
        assert tracing_exporter() is None

    def test_is_idempotent(self, monkeypatch):
        configure_tracing("ingest")
        first = trace.get_tracer_provider()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        configure_tracing("ingest")
        assert trace.get_tracer_provider() is first
        assert tracing_exporter() is None


class TestServiceName:
    def service_name(self) -> Any:
        provider = trace.get_tracer_provider()
        assert isinstance(provider, TracerProvider)
        return provider.resource.attributes["service.name"]

    def test_defaults_to_the_argument(self):
        configure_tracing("ingest")
        assert self.service_name() == "ingest"

    def test_otel_service_name_wins(self, monkeypatch):
        monkeypatch.setenv("OTEL_SERVICE_NAME", "automateos-ingest")
        configure_tracing("ingest")
        assert self.service_name() == "automateos-ingest"

    def test_resource_attributes_win(self, monkeypatch):
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=edge,deployment.environment=p")
        configure_tracing("ingest")
        assert self.service_name() == "edge"


class TestOutgoingRequests:
    def test_inject_headers_carries_the_current_span(self):
        capture()
        headers: dict[str, str] = {"accept": "application/json"}
        with tracer("worker").start_as_current_span("node") as span:
            inject_headers(headers)
            trace_id = span.get_span_context().trace_id
        assert headers["traceparent"].split("-")[1] == f"{trace_id:032x}"
        assert headers["accept"] == "application/json"


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    """A minimal OTLP/HTTP receiver on 127.0.0.1 that keeps the raw requests."""
    received: list[tuple[str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


class TestOtlpExport:
    def test_spans_reach_the_collector_named_by_the_environment(self, monkeypatch, collector):
        url, received = collector
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
        configure_tracing("ingest")
        with tracer("ingest").start_as_current_span("webhook") as span:
            span.set_attribute(RUN_ID, "r1")
            trace_id = span.get_span_context().trace_id

        assert flush_tracing(10)

        assert [path for path, _ in received] == ["/v1/traces"]
        request = ExportTraceServiceRequest.FromString(received[0][1])
        resource_spans = request.resource_spans[0]
        names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
        assert names["service.name"] == "ingest"
        exported = resource_spans.scope_spans[0].spans[0]
        assert exported.name == "webhook"
        assert exported.trace_id == trace_id.to_bytes(16, "big")
        assert {a.key: a.value.string_value for a in exported.attributes}[RUN_ID] == "r1"
