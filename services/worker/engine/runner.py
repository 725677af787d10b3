"""Run a workflow's nodes in order and describe what happened, step by step.

No I/O of its own besides what the nodes do: the caller loads the definition and writes the
records, so a run costs the database nothing while its nodes execute.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from opentelemetry.trace import Span, StatusCode, get_current_span
from pydantic import ValidationError

from services.worker import metrics
from services.worker.engine.credentials import CredentialVault
from services.worker.engine.records import record_payload, redact
from shared.nodes import (
    Halt,
    NodeContext,
    NodeDefinition,
    NodeError,
    NodeRegistry,
    NodeSpec,
    RetryableNodeError,
)
from shared.telemetry import NODE_ATTEMPTS, NODE_ID, NODE_STATUS, NODE_TYPE, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

SUCCEEDED, FAILED, SKIPPED = "succeeded", "failed", "skipped"
# Metric label for a node type this worker does not know: the type comes from user data.
UNKNOWN_TYPE_LABEL = "unknown"


@dataclass
class StepRecord:
    """One `run_steps` row; payloads already redacted, truncated and encoded."""

    position: int
    node_id: str
    type: str
    status: str
    input: orjson.Fragment | None = None
    output: orjson.Fragment | None = None
    error: str | None = None
    attempt: int = 0
    started_at: datetime | None = None
    duration_ms: int | None = None

    def as_row(self) -> dict[str, Any]:
        """The row as `jsonb_to_recordset` reads it (see the repository)."""
        return {
            "position": self.position,
            "node_id": self.node_id,
            "type": self.type,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "attempt": self.attempt,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "duration_ms": self.duration_ms,
        }


@dataclass
class RunOutcome:
    """The result of running every node: final status, the run's error, all steps."""

    status: str
    error: str | None
    steps: list[StepRecord]


@dataclass(frozen=True)
class RunIdentity:
    """What the nodes and the templating context know about the run."""

    run_id: str
    workflow_id: str
    attempt: int


class _StepFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "params"
        parts.append(f"{location}: {error['msg']}")
    return "params invalid after rendering: " + "; ".join(parts)


class NodeRunner:
    """Executes nodes with templating, validation, timeouts and retries.

    One instance per process: it holds the node registry and the guarded HTTP client every
    node shares.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        http: httpx.AsyncClient,
        *,
        payload_max_bytes: int,
        max_retry_wait_s: float,
        jitter: Callable[[float, float], float] = random.uniform,
        credentials: CredentialVault | None = None,
    ) -> None:
        self.registry = registry
        self.credentials = credentials or CredentialVault()
        self.http = http
        self.payload_max_bytes = payload_max_bytes
        self.max_retry_wait_s = max_retry_wait_s
        self._jitter = jitter
        self._loggers: dict[str, logging.Logger] = {}

    async def run(
        self,
        run: RunIdentity,
        trigger: Mapping[str, Any],
        nodes: Sequence[NodeDefinition],
        deadline: float,
    ) -> RunOutcome:
        """Run `nodes` in order until one fails, halts, or `deadline` (loop time) passes.

        Every node gets a record: the ones never reached are `skipped`.
        """
        context: dict[str, Any] = {
            "trigger": trigger,
            "steps": {},
            "run": {"id": run.run_id, "workflow_id": run.workflow_id, "attempt": run.attempt},
        }
        steps: list[StepRecord] = []
        status, error, skip_note = SUCCEEDED, None, None
        current: StepRecord | None = None
        step_clock = 0.0
        try:
            async with asyncio.timeout_at(deadline):
                for position, node in enumerate(nodes):
                    current = StepRecord(position, node.id, node.type, "running")
                    current.started_at = datetime.now(UTC)
                    step_clock = time.perf_counter()
                    steps.append(current)
                    halted, failure = await self._step(run, node, current, context, deadline)
                    current = None
                    if halted is not None:
                        skip_note = f"skipped: {halted} (run ended by node '{node.id}')"
                        break
                    if failure is not None and not node.continue_on_fail:
                        status = FAILED
                        error = f"node '{node.id}' ({node.type}) failed: {failure}"
                        skip_note = f"skipped: node '{node.id}' failed"
                        break
        except TimeoutError:
            status = FAILED
            where = f" while node '{current.node_id}' was running" if current else ""
            error = f"run exceeded its deadline{where}"
            skip_note = "skipped: run deadline exceeded"
            if current is not None:
                current.status = FAILED
                current.error = "interrupted: the run's deadline was exceeded"
                current.duration_ms = int((time.perf_counter() - step_clock) * 1000)
                self._observe(current.type, FAILED, time.perf_counter() - step_clock)
        for node in nodes[len(steps) :]:
            steps.append(
                StepRecord(len(steps), node.id, node.type, SKIPPED, error=skip_note, attempt=0)
            )
        return RunOutcome(status, error, steps)

    async def _step(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
    ) -> tuple[str | None, str | None]:
        """Run one node into `record`; return (halt reason, failure message).

        The node is one span, `node <type>`, current while it runs (so the http_request node's
        outgoing call carries it), a child of the run's span.
        """
        spec = self.registry.get(node.type)
        # The type comes from user data: an unknown one must not become a span name.
        name = f"node {node.type if spec else UNKNOWN_TYPE_LABEL}"
        with _tracer.start_as_current_span(
            name, attributes={NODE_ID: node.id, NODE_TYPE: node.type}
        ) as span:
            try:
                return await self._traced_step(run, node, spec, record, context, deadline, span)
            except asyncio.CancelledError:
                # The run's deadline cut the node short (run() turns it into a failed step).
                span.set_attributes({NODE_ATTEMPTS: record.attempt, NODE_STATUS: FAILED})
                span.set_status(StatusCode.ERROR, "interrupted: the run's deadline was exceeded")
                raise

    async def _traced_step(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any] | None,
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
        span: Span,
    ) -> tuple[str | None, str | None]:
        started = time.perf_counter()
        halted: str | None = None
        failure: str | None = None
        output: Any = None
        try:
            if spec is None:
                record.input = record_payload(redact(node.params), self.payload_max_bytes)
                raise _StepFailed(f"unknown node type {node.type!r} (no such plugin loaded)")
            output, halted = await self._execute(run, node, spec, record, context, deadline)
            record.status = SUCCEEDED
        except _StepFailed as exc:
            failure = exc.message
            record.status = FAILED
            record.error = failure
            output = {"error": failure}
            # The node's own error (its type and message) when there is one, else ours.
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            span.record_exception(cause, attributes={"exception.message": failure})
            span.set_status(StatusCode.ERROR, failure)
        span.set_attributes({NODE_ATTEMPTS: record.attempt, NODE_STATUS: record.status})
        # A failed step's output is only visible to later steps when the run goes on.
        context["steps"][node.id] = output
        record.output = record_payload(redact(output), self.payload_max_bytes)
        elapsed = time.perf_counter() - started
        record.duration_ms = int(elapsed * 1000)
        self._observe(node.type if spec else UNKNOWN_TYPE_LABEL, record.status, elapsed)
        return halted, failure

    async def _execute(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any],
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
    ) -> tuple[Any, str | None]:
        try:
            # With credentials: the values for the node, placeholders for the record (shown).
            rendered, shown, spec = await self.credentials.render(
                run.workflow_id, node, spec, context
            )
        except NodeError as exc:
            record.input = record_payload(
                redact(node.params, spec.secret_params), self.payload_max_bytes
            )
            raise _StepFailed(exc.message) from exc
        record.input = record_payload(redact(shown, spec.secret_params), self.payload_max_bytes)
        try:
            params = spec.params_model.model_validate(rendered)
        except ValidationError as exc:
            raise _StepFailed(_validation_message(exc)) from exc

        loop = asyncio.get_running_loop()
        max_retries = node.retry.max if node.retry else 0
        tries = 0
        while True:
            tries += 1
            record.attempt = tries
            ctx = NodeContext(
                run_id=run.run_id,
                workflow_id=run.workflow_id,
                node_id=node.id,
                attempt=tries,
                http=self.http,
                logger=self._logger(spec.type),
            )
            try:
                if node.timeout_s is not None:
                    async with asyncio.timeout(node.timeout_s):
                        result = await spec.execute(ctx, params)
                else:
                    result = await spec.execute(ctx, params)
            except TimeoutError as exc:
                # Our own per-node timeout; the run's deadline surfaces as a cancellation instead.
                error: NodeError = RetryableNodeError(f"timed out after {node.timeout_s:g}s")
                error.__cause__ = exc
            except NodeError as exc:
                error = exc
            except Exception as exc:
                # A plugin bug must fail its step, not the worker; the traceback goes to the log.
                log.exception(
                    "node raised an unexpected error",
                    extra={
                        "run_id": run.run_id,
                        "workflow_id": run.workflow_id,
                        "node_id": node.id,
                    },
                )
                error = NodeError(f"{type(exc).__name__}: {exc}")
            else:
                if isinstance(result, Halt):
                    return result.output, result.reason
                return result, None

            if not error.retryable or tries > max_retries:
                raise _StepFailed(error.message) from error
            wait = self._retry_wait(error, node, tries)
            if loop.time() + wait >= deadline:
                raise _StepFailed(f"{error.message} (no time left in the run to retry)") from error
            metrics.NODE_RETRIES.labels(spec.type).inc()
            get_current_span().add_event(
                "retry", {"attempt": tries, "wait_s": wait, "error": error.message}
            )
            log.info(
                "retrying node in %.2fs after: %s",
                wait,
                error.message,
                extra={"run_id": run.run_id, "workflow_id": run.workflow_id, "node_id": node.id},
            )
            await asyncio.sleep(wait)

    def _retry_wait(self, error: NodeError, node: NodeDefinition, tries: int) -> float:
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            # The server said when; waiting less would only earn another 429/503.
            return float(min(max(0.0, retry_after), self.max_retry_wait_s))
        backoff = node.retry.backoff if node.retry else 0.0
        # Full jitter: retries of many runs against one flaky API spread out instead of
        # arriving in synchronised waves.
        ceiling = min(self.max_retry_wait_s, backoff * 2 ** (tries - 1))
        return self._jitter(0.0, ceiling)

    def _logger(self, node_type: str) -> logging.Logger:
        logger = self._loggers.get(node_type)
        if logger is None:
            logger = self._loggers[node_type] = logging.getLogger(f"automateos.node.{node_type}")
        return logger

    @staticmethod
    def _observe(node_type: str, status: str, seconds: float) -> None:
        metrics.NODE_EXECUTIONS.labels(node_type, status).inc()
        metrics.NODE_DURATION.labels(node_type, status).observe(seconds)
