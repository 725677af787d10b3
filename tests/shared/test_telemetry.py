"""shared.telemetry: the trace crosses the queue, exports only when told to, survives bad input."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util._once import Once

from shared import telemetry
from shared.logs import JsonFormatter
from shared.telemetry import (
    RUN_ID,
    SpanKind,
    add_span_processor,
    configure_tracing,
    context_from_traceparent,
    current_traceparent,
    entry_span,
    flush_tracing,
    inject_headers,
    tracer,
    tracing_exporter,
)
from tests.fixtures.otlp import OtlpReceiver, running_otlp_receiver

INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN_ID = "00f067aa0ba902b7"
INCOMING = f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01"
UNSAMPLED = f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-00"
ZERO_TRACE_ID = f"00-{'0' * 32}-{INCOMING_SPAN_ID}-01"

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_TRACES_EXPORTER",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
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
    monkeypatch.setattr(telemetry, "_ids_only", False)
    yield
    provider = telemetry._provider
    if provider is not None:
        provider.shutdown()  # stops the batch thread of an exporting provider


def capture() -> InMemorySpanExporter:
    """Configure tracing and record every finished span in memory."""
    configure_tracing("test")
    spans = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(spans))
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


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with running_otlp_receiver() as started:
        yield started


class TestOtlpExport:
    def test_spans_reach_the_collector_named_by_the_environment(self, monkeypatch, receiver):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        configure_tracing("ingest")
        with tracer("ingest").start_as_current_span("webhook") as span:
            span.set_attribute(RUN_ID, "r1")
            trace_id = span.get_span_context().trace_id

        assert flush_tracing(10)

        assert [path for path, _ in receiver.requests] == ["/v1/traces"]
        [exported] = receiver.spans()
        assert exported.service == "ingest"
        assert exported.name == "webhook"
        assert exported.trace_id == f"{trace_id:032x}"
        assert exported.attributes[RUN_ID] == "r1"

    def test_an_entry_span_is_exported_when_an_endpoint_is_set(self, monkeypatch, receiver):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            assert entry.span.is_recording()
            entry.span.set_attribute(RUN_ID, "r1")

        assert flush_tracing(10)
        [exported] = receiver.spans()
        assert (exported.name, exported.kind) == ("POST /hooks/{token}", "SERVER")
        assert exported.trace_id == INCOMING_TRACE_ID
        assert exported.parent_span_id == INCOMING_SPAN_ID


def parts(traceparent: str | None) -> tuple[str, str, str, int]:
    assert traceparent is not None
    version, trace_id, span_id, flags = traceparent.split("-")
    return version, trace_id, span_id, int(flags, 16)


class TestCurrentTraceparent:
    @pytest.mark.parametrize(
        "incoming", [INCOMING, f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-00"]
    )
    def test_is_what_the_w3c_propagator_writes(self, incoming):
        configure_tracing("test")
        for context in (context_from_traceparent(incoming), None):
            with tracer("t").start_as_current_span("s", context=context):
                carrier: dict[str, str] = {}
                telemetry._W3C.inject(carrier)
                assert current_traceparent() == carrier["traceparent"]


class TestEntrySpanRecorded:
    """With somewhere for spans to go: a real SDK span."""

    def test_is_a_child_of_a_valid_incoming_traceparent(self):
        spans = capture()
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            assert entry.span.is_recording()
            assert trace.get_current_span() is entry.span
            traceparent = entry.traceparent()
            assert traceparent == current_traceparent()
        [recorded] = spans.get_finished_spans()
        assert recorded.kind is SpanKind.SERVER
        assert recorded.parent is not None
        assert f"{recorded.parent.span_id:016x}" == INCOMING_SPAN_ID
        assert f"{recorded.context.trace_id:032x}" == INCOMING_TRACE_ID
        assert parts(traceparent)[2] == f"{recorded.context.span_id:016x}"

    @pytest.mark.parametrize(
        "incoming", [None, "garbage", "00-" + "0" * 32 + "-" + "1" * 16 + "-01"]
    )
    def test_is_a_new_root_without_a_valid_one(self, incoming):
        spans = capture()
        with entry_span("POST /hooks/{token}", incoming):
            pass
        [recorded] = spans.get_finished_spans()
        assert recorded.parent is None

    def test_leaves_the_outcome_to_the_caller(self):
        spans = capture()
        with pytest.raises(LookupError), entry_span("POST /runs/{run_id}/retry", None):
            raise LookupError("a 404, not a server error")
        [recorded] = spans.get_finished_spans()
        assert recorded.status.is_unset
        assert not recorded.events


class TestEntrySpanIdsOnly:
    """Nothing exported: no span at all, but the identity the SDK's span would have had."""

    def test_builds_no_span_and_makes_nothing_current(self):
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            assert entry.span is trace.INVALID_SPAN
            assert current_traceparent() is None
            entry.span.set_attribute(RUN_ID, "r1")  # accepted, and ignored

    def test_continues_the_incoming_trace_with_a_new_span_id(self):
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            traceparent = entry.traceparent()
            assert entry.traceparent() == traceparent  # minted once
            assert entry.trace_id() == INCOMING_TRACE_ID
        version, trace_id, span_id, flags = parts(traceparent)
        assert (version, trace_id) == ("00", INCOMING_TRACE_ID)
        assert span_id not in (INCOMING_SPAN_ID, "0" * 16)
        assert flags == 0x01  # sampled like its parent; the parent did not say "random id"

    def test_each_delivery_gets_its_own_span_id(self):
        configure_tracing("ingest")
        minted = set()
        for _ in range(100):
            with entry_span("POST /hooks/{token}", INCOMING) as entry:
                minted.add(parts(entry.traceparent())[2])
        assert len(minted) == 100

    def test_a_root_gets_the_flags_the_sdk_gives_a_root(self):
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", None) as entry:
            ids_only = parts(entry.traceparent())
        with tracer("t").start_as_current_span("sdk"):
            sdk = parts(current_traceparent())
        assert ids_only[1] != sdk[1]  # a fresh trace each
        assert ids_only[3] == sdk[3]

    def test_honours_an_unsampled_parent(self):
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", UNSAMPLED) as entry:
            assert parts(entry.traceparent())[3] & 0x01 == 0

    def test_honours_the_configured_sampler(self, monkeypatch):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", None) as entry:
            assert parts(entry.traceparent())[3] & 0x01 == 0

    def test_a_worker_span_continues_it(self):
        configure_tracing("worker")
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            traceparent = entry.traceparent()
        spans = InMemorySpanExporter()
        add_span_processor(SimpleSpanProcessor(spans))
        with tracer("worker").start_as_current_span(
            "run", context=context_from_traceparent(traceparent)
        ):
            pass
        [run] = spans.get_finished_spans()
        assert run.parent is not None
        assert f"{run.parent.span_id:016x}" == parts(traceparent)[2]
        assert f"{run.context.trace_id:032x}" == INCOMING_TRACE_ID

    def test_a_processor_added_later_gets_real_spans(self):
        configure_tracing("ingest")
        spans = InMemorySpanExporter()
        add_span_processor(SimpleSpanProcessor(spans))
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            assert entry.span.is_recording()
        assert len(spans.get_finished_spans()) == 1

    def test_sdk_disabled_passes_the_incoming_traceparent_on(self, monkeypatch):
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        configure_tracing("ingest")
        with entry_span("POST /hooks/{token}", INCOMING) as entry:
            assert entry.traceparent() == INCOMING
        with entry_span("POST /hooks/{token}", None) as entry:
            assert entry.traceparent() is None


class TestLogLines:
    def test_carry_the_trace_id_of_the_current_span(self):
        capture()
        record = logging.makeLogRecord({"msg": "run succeeded"})
        with tracer("worker").start_as_current_span(
            "run", context=context_from_traceparent(INCOMING)
        ):
            line = json.loads(JsonFormatter("worker").format(record))
        assert line["trace_id"] == INCOMING_TRACE_ID


class TestParsingAgreesWithTheW3cPropagator:
    """context_from_traceparent parses by hand (speed); it must read what the SDK reads."""

    @pytest.mark.parametrize(
        "value",
        [
            INCOMING,
            UNSAMPLED,
            f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-03",
            f" \t{INCOMING} \t",
            f"01-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01-future-fields",
            f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01-extra",
            f"ff-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-01",
            f"00-{INCOMING_TRACE_ID.upper()}-{INCOMING_SPAN_ID}-01",
            f"00-{INCOMING_TRACE_ID}-{INCOMING_SPAN_ID}-zz",
            f"00-{INCOMING_TRACE_ID}-{'0' * 16}-01",
            ZERO_TRACE_ID,
            INCOMING + " " * 500,
            INCOMING[:-1],
            "",
            "garbage",
        ],
    )
    def test_reads_like_the_propagator(self, value):
        ours = trace.get_current_span(context_from_traceparent(value)).get_span_context()
        extracted = TraceContextTextMapPropagator().extract({"traceparent": value})
        theirs = trace.get_current_span(extracted).get_span_context()
        assert (ours.is_valid, ours.trace_id, ours.span_id, ours.trace_flags, ours.is_remote) == (
            theirs.is_valid,
            theirs.trace_id,
            theirs.span_id,
            theirs.trace_flags,
            theirs.is_remote,
        )


class TestIdsOnlyAgreesWithTheSdk:
    """The ids-only span gets the flags an SDK span would get, whatever the sampler."""

    @pytest.mark.parametrize(
        ("sampler", "arg"),
        [
            ("parentbased_always_on", None),
            ("always_on", None),
            ("always_off", None),
            ("parentbased_always_off", None),
            ("traceidratio", "0.5"),
            ("parentbased_traceidratio", "0.5"),
        ],
    )
    @pytest.mark.parametrize("incoming", [INCOMING, UNSAMPLED, f"{INCOMING[:-2]}03", None])
    def test_same_flags(self, monkeypatch, sampler, arg, incoming):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
        if arg is not None:
            monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
        configure_tracing("ingest")
        assert telemetry._ids_only
        with entry_span("POST /hooks/{token}", incoming) as entry:
            _, trace_id, _, flags = parts(entry.traceparent())
        sdk = tracer("t").start_span(
            "POST /hooks/{token}",
            context=context_from_traceparent(incoming),
            kind=SpanKind.SERVER,
        )
        expected = sdk.get_span_context()
        if incoming is None and "ratio" in sampler:
            return  # a ratio decides by trace id, and two roots have different ones
        assert flags == expected.trace_flags
        if incoming is not None:
            assert int(trace_id, 16) == expected.trace_id == int(INCOMING_TRACE_ID, 16)
