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
        hooks: an RQ work horse leaves through `os._exit`, which would drop its last batch.
    tracing_exporter() -> SpanExporter | None
        What configure_tracing exports to (None: not exported), for a start-up log line.

Span attribute names (use these constants, never string literals, so dashboards and trace
queries can rely on them): RUN_ID, WORKFLOW_ID, NODE_ID, NODE_TYPE.

Typical use:

    # ingest, per request
    with tracer(__name__).start_as_current_span("webhook") as span:
        span.set_attribute(WORKFLOW_ID, str(workflow_id))
        job = RunJob(..., traceparent=current_traceparent())

    # worker, per job
    parent = context_from_traceparent(job["traceparent"])
    with tracer(__name__).start_as_current_span("run", context=parent) as span:
        span.set_attribute(RUN_ID, job["run_id"])
        ...
        with tracer(__name__).start_as_current_span(f"node {node.id}") as node_span:
            node_span.set_attributes({NODE_ID: node.id, NODE_TYPE: node.type})
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import MutableMapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "NODE_ID",
    "NODE_TYPE",
    "RUN_ID",
    "WORKFLOW_ID",
    "configure_tracing",
    "context_from_traceparent",
    "current_traceparent",
    "flush_tracing",
    "inject_headers",
    "tracer",
    "tracing_exporter",
]

log = logging.getLogger(__name__)

RUN_ID = "automateos.run_id"
WORKFLOW_ID = "automateos.workflow_id"
NODE_ID = "automateos.node.id"
NODE_TYPE = "automateos.node.type"

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The job contract carries exactly one W3C `traceparent`, whatever OTEL_PROPAGATORS says, so
# the queue hop always uses this propagator; outgoing HTTP uses the same one for the same reason.
_W3C = TraceContextTextMapPropagator()

_lock = threading.Lock()
_provider: TracerProvider | None = None
_exporter: SpanExporter | None = None


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
    global _provider, _exporter
    with _lock:
        if _provider is not None:
            return
        provider = TracerProvider(resource=_resource(service_name))
        exporter = None
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() != "true":
            exporter = _exporter_from_environment()
        if exporter is not None:
            provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        _provider, _exporter = provider, exporter
    if exporter is not None:
        log.info("exporting traces", extra={"exporter": type(exporter).__name__})


def tracer(name: str) -> trace.Tracer:
    """A tracer from the configured provider (a no-op one before configure_tracing)."""
    return trace.get_tracer(name)


def current_traceparent() -> str | None:
    """The W3C traceparent header value of the current span, or None when there is none."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> Context:
    """A context whose parent is the span named by `traceparent`; empty (a new root) if invalid.

    Extraction starts from an empty context rather than the current one: a worker process runs
    many jobs, and a run must never hang off a span left over from the previous one.
    """
    if not traceparent:
        return Context()
    return _W3C.extract({"traceparent": traceparent}, context=Context())


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
