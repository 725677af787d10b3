"""Tracing for every process: one trace from the webhook request, through the queue, to each node.

The API the services call (everything else here is private):

    configure_tracing(service_name: str) -> None
        Once per process, at start-up (idempotent; later calls do nothing). Installs a real
        TracerProvider, so spans have trace ids for the JSON logs (shared/logs.py) and for the
        job's `traceparent` even when nothing is exported. Spans are exported over OTLP/HTTP
        (batched) only when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
        is set. The other standard variables work as in the SDK: `OTEL_SDK_DISABLED=true` (no
        spans at all), `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` (override
        `service_name`), `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS`,
        `..._TIMEOUT`, `..._COMPRESSION`, `OTEL_TRACES_EXPORTER` (`none` turns export off,
        `console` prints spans to stdout), `OTEL_BSP_*` (batching).
    tracer(name: str) -> opentelemetry.trace.Tracer
        The tracer to start spans with, e.g. `tracer(__name__).start_as_current_span("run")`.
    current_traceparent() -> str | None
        The W3C `traceparent` of the current span, for `RunJob.traceparent`; None without one.
    context_from_traceparent(traceparent: str | None) -> opentelemetry.context.Context
        The parent context for the worker's run span. An empty, missing or malformed value
        gives an empty context, so the span started with it is a new root (never a child of
        whatever span happened to be current in the worker).
    inject_headers(headers: MutableMapping[str, str]) -> None
        Adds `traceparent` (and `tracestate`) of the current span to outgoing HTTP headers.
    flush_tracing(timeout_s: float = 5.0) -> bool
        Exports the spans still buffered. Call it before a process ends without running atexit
        hooks: an RQ work horse leaves through `os._exit`, and uvicorn re-raises SIGTERM after
        its shutdown (the default action ends the process), either of which drops the last
        batch; the services call it at the end of their lifespan / worker loop.
    tracing_exporter() -> SpanExporter | None
        What configure_tracing exports to (None: not exported), for a start-up log line.
    entry_span(name, traceparent, kind=SpanKind.SERVER) -> context manager of an EntrySpan
        For a hot path (ingest's webhook): the span where a request enters this process, a
        child of `traceparent` when that is valid, else a new root. The block annotates
        `entry.span` and hands `entry.traceparent()` on (in the job). The caller records the
        outcome: an exception leaving the block is not marked an error (for an HTTP server a
        404 is not one). When something receives spans it is a real SDK span, current for the
        block. While nothing does (no exporter, no added processor), it is no span at all:
        `.span` is a no-op, nothing is made current, and `.traceparent()` mints the identity
        the SDK's span would have had (see `_IdsOnlyEntry`).
    add_span_processor(processor: SpanProcessor) -> None
        Send finished spans somewhere besides the exporter (in-process tests); after it,
        entry_span builds real spans.

Span attribute names (use these constants, never string literals, so dashboards and trace
queries can rely on them): RUN_ID, WORKFLOW_ID, WORKFLOW_VERSION, RUN_ATTEMPT, RUN_STATUS,
NODE_ID, NODE_TYPE, NODE_ATTEMPTS, NODE_STATUS, WEBHOOK_OUTCOME, and the HTTP ones of the
OpenTelemetry semantic conventions: HTTP_METHOD, HTTP_ROUTE (the template, never the path: it
carries tokens), HTTP_STATUS_CODE.

Typical use (docs/observability.md, "Traces", lists the spans the services make):

    # ingest, per request (the hot path)
    with entry_span("POST /hooks/{token}", headers.get("traceparent")) as entry:
        entry.span.set_attribute(WORKFLOW_ID, str(workflow_id))
        job = RunJob(..., traceparent=entry.traceparent())

    # workflows, per manual run (not a hot path: a plain span, current)
    parent = context_from_traceparent(request.headers.get("traceparent"))
    with tracer(__name__).start_as_current_span("POST /workflows/{workflow_id}/run",
                                                 context=parent, kind=SpanKind.SERVER):
        job = RunJob(..., traceparent=current_traceparent())

    # worker, per job
    parent = context_from_traceparent(job["traceparent"])
    with tracer(__name__).start_as_current_span("run", context=parent) as span:
        span.set_attribute(RUN_ID, job["run_id"])
        ...
        with tracer(__name__).start_as_current_span(f"node {node.type}") as node_span:
            node_span.set_attributes({NODE_ID: node.id, NODE_TYPE: node.type})
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "HTTP_METHOD",
    "HTTP_ROUTE",
    "HTTP_STATUS_CODE",
    "NODE_ATTEMPTS",
    "NODE_ID",
    "NODE_STATUS",
    "NODE_TYPE",
    "RUN_ATTEMPT",
    "RUN_ID",
    "RUN_STATUS",
    "WEBHOOK_OUTCOME",
    "WORKFLOW_ID",
    "WORKFLOW_VERSION",
    "EntrySpan",
    "SpanKind",
    "add_span_processor",
    "configure_tracing",
    "context_from_traceparent",
    "current_traceparent",
    "entry_span",
    "flush_tracing",
    "inject_headers",
    "tracer",
    "tracing_exporter",
]

log = logging.getLogger(__name__)

RUN_ID = "automateos.run_id"
WORKFLOW_ID = "automateos.workflow_id"
WORKFLOW_VERSION = "automateos.workflow_version"
RUN_ATTEMPT = "automateos.run.attempt"
RUN_STATUS = "automateos.run.status"
NODE_ID = "automateos.node.id"
NODE_TYPE = "automateos.node.type"
NODE_ATTEMPTS = "automateos.node.attempts"
NODE_STATUS = "automateos.node.status"
WEBHOOK_OUTCOME = "automateos.webhook.outcome"
# OpenTelemetry semantic conventions (stable HTTP attributes).
HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS_CODE = "http.response.status_code"

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The job contract carries exactly one W3C `traceparent`, whatever OTEL_PROPAGATORS says, so
# the queue hop always uses this propagator; outgoing HTTP uses the same one for the same reason.
_W3C = TraceContextTextMapPropagator()

_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporter: SpanExporter | None = None
# True while a provider is installed and enabled but nothing receives finished spans (no
# exporter, no added processor): a recorded span is then work nobody sees, so entry_span
# builds none, only its identity.
_ids_only = False


def _resource(service_name: str) -> Resource:
    """The SDK's resource, with `service_name` only where the operator did not name the service.

    `Resource.create(attributes)` lets the caller's attributes win over OTEL_SERVICE_NAME, the
    reverse of what the specification asks, so we only fill the gap.
    """
    resource = Resource.create()
    if SERVICE_NAME not in OTELResourceDetector().detect().attributes:
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def _exporter_from_environment() -> SpanExporter | None:
    chosen = {
        name.strip().lower()
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    }
    if "none" in chosen:
        return None
    if "console" in chosen:
        return ConsoleSpanExporter()
    if not any(os.environ.get(variable, "").strip() for variable in _ENDPOINT_VARIABLES):
        # No collector named: traces stay in-process (ids for logs and the queue only).
        return None
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    )
    if protocol and protocol != "http/protobuf":
        log.warning("only OTLP over http/protobuf is installed; ignoring protocol %s", protocol)
    # Imported here so a process that never exports does not pay for requests + protobuf.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # No arguments: the exporter reads the endpoint, headers, timeout and compression from the
    # standard variables itself, including appending /v1/traces to OTEL_EXPORTER_OTLP_ENDPOINT.
    return OTLPSpanExporter()


def configure_tracing(service_name: str) -> None:
    """Install the process's TracerProvider (see the module docstring); idempotent."""
    global _provider, _exporter, _ids_only
    with _lock:
        if _provider is not None:
            return
        provider = TracerProvider(resource=_resource(service_name))
        exporter = None
        disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        if not disabled:
            exporter = _exporter_from_environment()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider, _exporter = provider, exporter
        _ids_only = not disabled and exporter is None
    if exporter is not None:
        log.info("exporting traces", extra={"exporter": type(exporter).__name__})


def tracer(name: str) -> trace.Tracer:
    """A tracer from the configured provider (a no-op one before configure_tracing)."""
    return trace.get_tracer(name)


def current_traceparent() -> str | None:
    """The W3C traceparent header value of the current span, or None when there is none."""
    # What _W3C.inject writes, without the carrier and tracestate.
    return _format(trace.get_current_span().get_span_context())


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose parent is the span named by `traceparent`; empty (a new root) if invalid.

    Extraction starts from an empty context rather than the current one: a worker process runs
    many jobs, and a run must never hang off a span left over from the previous one.
    """
    parsed = _parse_traceparent(traceparent)
    if parsed is None:
        return Context()
    return trace.set_span_in_context(NonRecordingSpan(_remote(parsed)), Context())


# The W3C propagator's own rules (its extract costs ~4 µs a call, most of it a regex search
# and a getter); tests/shared/test_telemetry.py checks that both read every input alike.
_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)"
)
_TRACEPARENT_MAX_CHARS = 512
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16


def _parse_traceparent(traceparent: str | None) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C `traceparent`; None when missing or malformed."""
    if not traceparent or len(traceparent) > _TRACEPARENT_MAX_CHARS:
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == _ZERO_TRACE_ID or span_id == _ZERO_SPAN_ID:
        return None
    if version == "ff" or (version == "00" and rest):
        return None
    return int(trace_id, 16), int(span_id, 16), int(flags, 16)


def _remote(parsed: tuple[int, int, int]) -> SpanContext:
    trace_id, span_id, flags = parsed
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def inject_headers(headers: MutableMapping[str, str]) -> None:
    """Add the current span's W3C trace headers to an outgoing request's headers."""
    _W3C.inject(headers)


def flush_tracing(timeout_s: float = 5.0) -> bool:
    """Export buffered spans now; True when everything was exported within the timeout."""
    if _provider is None:
        return True
    return _provider.force_flush(int(timeout_s * 1000))


def tracing_exporter() -> SpanExporter | None:
    """The exporter configure_tracing installed, or None when spans are not exported."""
    return _exporter


def add_span_processor(processor: SpanProcessor) -> None:
    """Also hand finished spans to `processor` (after configure_tracing); entry_span records
    real spans from then on."""
    global _ids_only
    if _provider is None:
        raise RuntimeError("configure_tracing() first")
    _provider.add_span_processor(processor)
    _ids_only = False


def entry_span(
    name: str, traceparent: str | None, kind: SpanKind = SpanKind.SERVER
) -> AbstractContextManager[EntrySpan]:
    """The span of a request entering this process (module docstring), for ingest's hot path.

    `name` must be low-cardinality (a route template, never a path with a token in it). The
    block gets an EntrySpan: annotate `.span`, hand `.traceparent()` on in the job.
    """
    if _ids_only:
        return _IdsOnlyEntry(name, kind, traceparent)
    return _RecordedEntry(
        trace.get_tracer(__name__).start_as_current_span(
            name,
            context=context_from_traceparent(traceparent),
            kind=kind,
            record_exception=False,
            set_status_on_exception=False,
        )
    )


class EntrySpan:
    """What entry_span's block gets: the span to annotate and the traceparent to hand on."""

    __slots__ = ("span",)

    span: Span  # a no-op span when nothing is recorded: annotating it costs nothing

    def traceparent(self) -> str | None:
        """The W3C traceparent naming this span (None with OTEL_SDK_DISABLED and no parent)."""
        raise NotImplementedError

    def trace_id(self) -> str | None:
        """The trace id as 32 hex digits, for a log line."""
        traceparent = self.traceparent()
        return traceparent[3:35] if traceparent else None


class _RecordedEntry(EntrySpan, AbstractContextManager[EntrySpan]):
    """A real SDK span, current for the block."""

    __slots__ = ("_manager",)

    def __init__(self, manager: AbstractContextManager[Span]) -> None:
        self._manager = manager

    def __enter__(self) -> EntrySpan:
        self.span = self._manager.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._manager.__exit__(*exc)

    def traceparent(self) -> str | None:
        return _format(self.span.get_span_context())


class _IdsOnlyEntry(EntrySpan, AbstractContextManager[EntrySpan]):
    """No span at all: the identity the SDK's span would have had, minted on first use.

    With no span processor an SDK span is dropped when it ends; its only visible effect is its
    identity, which goes on in the job's traceparent. That is all this keeps: the sender's
    trace id or a new one, a new span id, the sampler's decision in the flags. It builds no
    OpenTelemetry object and makes nothing current (so log lines of the block have no
    trace_id), and a request that never asks for the traceparent (a rejected one) costs only
    this object. See docs/observability.md, "What tracing costs ingest".
    """

    __slots__ = ("_incoming", "_kind", "_name", "_traceparent")

    def __init__(self, name: str, kind: SpanKind, incoming: str | None) -> None:
        self.span = trace.INVALID_SPAN
        self._name = name
        self._kind = kind
        self._incoming = incoming
        self._traceparent: str | None = None

    def __enter__(self) -> EntrySpan:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def traceparent(self) -> str | None:
        if self._traceparent is None:
            self._traceparent = _mint(self._name, self._kind, _parse_traceparent(self._incoming))
        return self._traceparent


def _format(context: SpanContext) -> str | None:
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


def _mint(name: str, kind: SpanKind, parent: tuple[int, int, int] | None) -> str:
    """The traceparent of the span the SDK's `Tracer.start_span` would start as a child of
    `parent` (a parsed remote traceparent, no tracestate) or as a root: the same trace id, a
    new span id, the sampler's decision and the random-trace-id bit in the flags."""
    assert _provider is not None
    ids = _provider.id_generator
    if parent is not None:
        trace_id, _, parent_flags = parent
        random_trace_id = bool(parent_flags & TraceFlags.RANDOM_TRACE_ID)
    else:
        trace_id = ids.generate_trace_id()
        random_trace_id = ids.is_trace_id_random()
    sampler = _provider.sampler
    if sampler is DEFAULT_ON:
        # The default sampler's decision without building a context to ask it: the remote
        # parent's sampled flag, or sampled for a root.
        sampled = parent is None or bool(parent[2] & TraceFlags.SAMPLED)
    else:
        parent_context = (
            Context()
            if parent is None
            else trace.set_span_in_context(NonRecordingSpan(_remote(parent)), Context())
        )
        sampling = sampler.should_sample(parent_context, trace_id, name, kind)
        # Decision.is_sampled() is this comparison, untyped.
        sampled = sampling.decision is Decision.RECORD_AND_SAMPLE
    flags = (TraceFlags.SAMPLED if sampled else 0) | (
        TraceFlags.RANDOM_TRACE_ID if random_trace_id else 0
    )
    return f"00-{trace_id:032x}-{ids.generate_span_id():016x}-{flags:02x}"
