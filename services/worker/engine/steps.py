"""Execute one step: render its params, validate them, run the node with timeout and retries.

Shared by every run of the process, concurrently: it keeps no per-run state. A node whose code
may block (`NodeSpec.runs_in_thread`) runs in a worker thread, so the other runs on the loop
go on and the step's timeout holds; cheap synchronous nodes run inline, marked on the loop so
a stall report can name them.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from opentelemetry.trace import Span, StatusCode, get_current_span
from pydantic import ValidationError

from services.worker import metrics
from services.worker.engine.children import ChildPark, ChildRefused, ChildRuns
from services.worker.engine.credentials import CredentialVault
from services.worker.engine.fairness import FairRenderer, current_run_cpu
from services.worker.engine.records import encode_json, record_payload, redact
from services.worker.engine.secret_scope import (
    current,
    install_log_scrubbing,
    register,
    scrub_message,
    step_scope,
)
from services.worker.loop import EngineLoop
from shared.nodes import (
    CallWorkflow,
    Halt,
    NodeContext,
    NodeDefinition,
    NodeError,
    NodeSpec,
    Park,
    RetryableNodeError,
)
from shared.telemetry import NODE_ATTEMPTS, NODE_ID, NODE_STATUS, NODE_TYPE, tracer

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

SUCCEEDED, FAILED, SKIPPED, WAITING = "succeeded", "failed", "skipped", "waiting"
# Metric label for a node type this worker does not know: the type comes from user data.
UNKNOWN_TYPE_LABEL = "unknown"


@dataclass
class StepRecord:
    """One `run_steps` row; payloads already redacted, truncated and encoded.

    `resume_output` is the step's whole output, kept only while the run is unfinished so a
    later delivery can resume after it (effectful and parked steps); the final write drops it.
    """

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
    resume_output: orjson.Fragment | None = None

    def as_row(self, *, keep_resume: bool = False) -> dict[str, Any]:
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
            "resume_output": self.resume_output if keep_resume else None,
        }


@dataclass(frozen=True)
class RunIdentity:
    """What the nodes and the templating context know about the run."""

    run_id: str
    workflow_id: str
    attempt: int
    # Whose run it is: what a `call_workflow` step may call is looked up among their workflows.
    owner_id: str = ""


@dataclass(frozen=True)
class StepResult:
    """How a step ended: its output (seen by later steps) and what it means for the run."""

    output: Any
    failure: str | None = None
    halted: str | None = None
    park: Park | None = None


class StepFailed(Exception):
    """The step failed with `message` (recorded as its error)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _validation_message(exc: ValidationError, *, secrets_used: bool) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"]) or "params"
        # A message may quote the rendered value ("Invalid port: '...'"); with secrets in the
        # params only the kind of error is told, so no part or form of a value is.
        parts.append(f"{location}: {error['type'] if secrets_used else error['msg']}")
    return "params invalid after rendering: " + "; ".join(parts)


class StepExecutor:
    """Executes steps with templating, validation, timeouts, retries and threads."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        payload_max_bytes: int,
        max_retry_wait_s: float,
        engine_loop: EngineLoop | None,
        park_after_s: float,
        credentials: CredentialVault | None = None,
        renderer: FairRenderer | None = None,
        children: ChildRuns | None = None,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.http = http
        self.credentials = credentials or CredentialVault()
        self.renderer = renderer or FairRenderer()
        self.children = children
        self.payload_max_bytes = payload_max_bytes
        self.max_retry_wait_s = max_retry_wait_s
        self.engine_loop = engine_loop
        self.park_after_s = park_after_s
        self._jitter = jitter
        self._loggers: dict[str, logging.Logger] = {}
        install_log_scrubbing()

    async def step(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any] | None,
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
    ) -> StepResult:
        """Run one node into `record` as the span `node <type>` (a child of the run's span)."""
        # The type comes from user data: an unknown one must not become a span name.
        name = f"node {node.type if spec else UNKNOWN_TYPE_LABEL}"
        with (
            step_scope(),
            _tracer.start_as_current_span(
                name, attributes={NODE_ID: node.id, NODE_TYPE: node.type}
            ) as span,
        ):
            try:
                return await self._traced(run, node, spec, record, context, deadline, span)
            except asyncio.CancelledError:
                # The run's deadline cut the node short (the runner records the failed step).
                span.set_attributes({NODE_ATTEMPTS: record.attempt, NODE_STATUS: FAILED})
                span.set_status(StatusCode.ERROR, "interrupted: the run's deadline was exceeded")
                raise
            except Exception as exc:
                # A bug of ours (rendering, recording): the step fails with a reason, the run
                # goes on as for any failed step, and no record is left half-built.
                log.exception(
                    "engine error in a step",
                    extra=_log_ids(run, node),
                )
                message = scrub_message(f"internal error: {type(exc).__name__}: {exc}")
                record.status, record.error = FAILED, message
                record.output = record.resume_output = None
                # With credentials opened, the traceback could quote them: the message only.
                span.record_exception(StepFailed(message) if current() else exc)
                span.set_status(StatusCode.ERROR, message)
                return StepResult({"error": message}, failure=message)

    async def _traced(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any] | None,
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
        span: Span,
    ) -> StepResult:
        started = time.perf_counter()
        result: StepResult
        try:
            if spec is None:
                record.input = record_payload(redact(node.params), self.payload_max_bytes)
                raise StepFailed(f"unknown node type {node.type!r} (no such plugin loaded)")
            result = await self._execute(run, node, spec, record, context, deadline)
            record.status = WAITING if result.park is not None else SUCCEEDED
        except StepFailed as exc:
            # Every message of a step that opened credentials is scrubbed of them, whoever
            # built it (a validation error of rendered params, a node, the engine).
            message = scrub_message(exc.message)
            record.status = FAILED
            record.error = message
            result = StepResult({"error": message}, failure=message)
            # The node's own error (its type and message) when there is one, else ours; with
            # credentials opened, ours alone (a cause's traceback could quote them).
            cause = exc.__cause__ if isinstance(exc.__cause__, Exception) else exc
            if current():
                cause = StepFailed(message)
            span.record_exception(cause, attributes={"exception.message": message})
            span.set_status(StatusCode.ERROR, message)
        span.set_attributes({NODE_ATTEMPTS: record.attempt, NODE_STATUS: record.status})
        self.record_output(record, spec, result.output)
        elapsed = time.perf_counter() - started
        record.duration_ms = int(elapsed * 1000)
        if result.park is None:
            observe(node.type if spec else UNKNOWN_TYPE_LABEL, record.status, elapsed)
        return result

    def record_output(self, record: StepRecord, spec: NodeSpec[Any] | None, output: Any) -> None:
        """Fill the record's output (and the resume copy for a step a later delivery reuses)."""
        record.output = record_payload(redact(output), self.payload_max_bytes)
        if record.status == WAITING or (spec is not None and spec.has_effects):
            record.resume_output = orjson.Fragment(encode_json(output))

    async def _execute(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any],
        record: StepRecord,
        context: dict[str, Any],
        deadline: float,
    ) -> StepResult:
        try:
            # With credentials: the values for the node, placeholders for the record (shown).
            prepared = await self.credentials.render(
                run.workflow_id, node, spec, context, self.renderer
            )
        except NodeError as exc:
            record.input = record_payload(
                redact(node.params, spec.secret_params), self.payload_max_bytes
            )
            raise StepFailed(exc.message) from exc
        register(prepared.secrets)
        spec = prepared.spec
        record.input = record_payload(
            redact(prepared.shown, spec.secret_params), self.payload_max_bytes
        )
        try:
            params = spec.params_model.model_validate(prepared.params)
        except ValidationError as exc:
            message = _validation_message(exc, secrets_used=bool(prepared.secrets))
            raise StepFailed(message) from (None if prepared.secrets else exc)

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
                park_after_s=self.park_after_s,
            )
            try:
                if node.timeout_s is not None:
                    async with asyncio.timeout(node.timeout_s):
                        result = await self._call(spec, ctx, params, node.id)
                else:
                    result = await self._call(spec, ctx, params, node.id)
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
                    extra=_log_ids(run, node),
                )
                error = NodeError(f"{type(exc).__name__}: {exc}")
            else:
                if isinstance(result, Halt):
                    return StepResult(result.output, halted=result.reason)
                if isinstance(result, Park):
                    return StepResult(result.output, park=result)
                if isinstance(result, CallWorkflow):
                    return await self._start_child(run, record, context, result)
                return StepResult(result)

            if not error.retryable or tries > max_retries:
                raise StepFailed(error.message) from error
            wait = self._retry_wait(error, node, tries)
            if loop.time() + wait >= deadline:
                raise StepFailed(f"{error.message} (no time left in the run to retry)") from error
            metrics.NODE_RETRIES.labels(spec.type).inc()
            get_current_span().add_event(
                "retry", {"attempt": tries, "wait_s": wait, "error": scrub_message(error.message)}
            )
            log.info(
                "retrying node in %.2fs after: %s",
                wait,
                error.message,
                extra=_log_ids(run, node),
            )
            await asyncio.sleep(wait)

    async def _start_child(
        self, run: RunIdentity, record: StepRecord, context: dict[str, Any], call: CallWorkflow
    ) -> StepResult:
        """Start the step's child run; with `wait`, park until it ends (children.py)."""
        if self.children is None:
            raise StepFailed("this engine cannot start child runs")
        try:
            child_run_id = await self.children.start(
                run.run_id, run.owner_id, record.position, call, context.get("item_index")
            )
        except ChildRefused as exc:
            raise StepFailed(exc.message) from exc
        if not call.wait:
            return StepResult({"run_id": child_run_id})
        return StepResult(
            None, park=ChildPark(resume_in_s=call.timeout_s, child_run_id=child_run_id)
        )

    async def _call(self, spec: NodeSpec[Any], ctx: NodeContext, params: Any, node_id: str) -> Any:
        if spec.runs_in_thread:
            # The thread cannot be stopped: on timeout the step fails and the thread finishes
            # in the background, off the loop.
            return await asyncio.to_thread(spec.run, ctx, params)
        if not spec.runs_inline or self.engine_loop is None:
            return await spec.execute(ctx, params)
        self.engine_loop.inline_activity = f"node '{node_id}' ({spec.type}) ran inline"
        started = time.thread_time()
        try:
            return spec.run(ctx, params)
        finally:
            self.engine_loop.inline_activity = None
            account = current_run_cpu()
            if account is not None:
                # Charged without failing: the node's work is done; the next step pays.
                account.spent_s += time.thread_time() - started

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


def _log_ids(run: RunIdentity, node: NodeDefinition) -> dict[str, str]:
    return {"run_id": run.run_id, "workflow_id": run.workflow_id, "node_id": node.id}


def observe(node_type: str, status: str, seconds: float) -> None:
    """Count a finished step in the node metrics."""
    metrics.NODE_EXECUTIONS.labels(node_type, status).inc()
    metrics.NODE_DURATION.labels(node_type, status).observe(seconds)
