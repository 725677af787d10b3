"""One delivery of a run job: claim the run, run its nodes, record the outcome.

Two statements per run reach PostgreSQL (the claim and the final write) plus one the first
time a process meets a workflow version; nothing is written while nodes execute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.worker import metrics
from services.worker.engine import repository
from services.worker.engine.records import redact
from services.worker.engine.runner import FAILED, NodeRunner, RunIdentity, RunOutcome
from services.worker.engine.versions import LoadedVersion, VersionCache, parse_nodes
from shared.queue import RunJob
from shared.telemetry import (
    RUN_ATTEMPT,
    RUN_ID,
    RUN_STATUS,
    WORKFLOW_ID,
    WORKFLOW_VERSION,
    context_from_traceparent,
    tracer,
)

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

T = TypeVar("T")

# The claim is cheap to retry; the final write is worth waiting for, because failing it means
# the job is re-run and its nodes' side effects happen again.
_START_TRIES = 3
_FINISH_TRIES = 8


def run_budget(job_timeout_s: float) -> float:
    """Seconds the nodes of one delivery may take: a little under the RQ job timeout.

    The margin leaves time to record the run as failed before RQ's own timeout fires.
    """
    margin = min(30.0, max(1.0, job_timeout_s * 0.1))
    return max(0.5, job_timeout_s - margin)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_transient(exc: BaseException) -> bool:
    # Connection-level failures (server restarting, network blip), not bad statements.
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, OSError | TimeoutError)


class RunEngine:
    """Executes run jobs against one database engine, node runner and version cache."""

    def __init__(self, db: AsyncEngine, runner: NodeRunner, versions: VersionCache) -> None:
        self.db = db
        self.runner = runner
        self.versions = versions

    async def execute(self, job: RunJob, *, job_timeout_s: float) -> str:
        """Run one delivery of `job`; return what happened (a run status, or why nothing ran).

        Raises only when PostgreSQL stays unreachable, so RQ re-queues the job.

        The delivery is one `run` span, a child of the span that queued the job (ingest's
        request, a manual run) through the job's traceparent; each node is a child span of it
        (runner.py), and log lines written meanwhile carry its trace id.
        """
        with _tracer.start_as_current_span(
            "run",
            context=context_from_traceparent(job.get("traceparent")),
            kind=SpanKind.CONSUMER,
            attributes={
                RUN_ID: job["run_id"],
                WORKFLOW_ID: job["workflow_id"],
                WORKFLOW_VERSION: job["workflow_version"],
            },
        ) as span:
            db = _DeliveryConnection(self.db)
            try:
                result = await self._execute(job, job_timeout_s, db, span)
            finally:
                await db.close()
            span.set_attribute(RUN_STATUS, result)
            return result

    async def _execute(
        self, job: RunJob, job_timeout_s: float, db: _DeliveryConnection, span: Span
    ) -> str:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + run_budget(job_timeout_s)
        clock = time.perf_counter()
        started_at = datetime.now(UTC)
        run_id = uuid.UUID(job["run_id"])
        workflow_id = uuid.UUID(job["workflow_id"])
        trigger = job["trigger"]
        ids = {"run_id": job["run_id"], "workflow_id": job["workflow_id"]}
        received_at = _parse_time(trigger.get("received_at"))
        values: dict[str, Any] = {
            "id": run_id,
            "workflow_id": workflow_id,
            "owner_id": uuid.UUID(job["owner_id"]),
            "workflow_version": job["workflow_version"],
            # Signature and auth headers are credentials: the record keeps their names only.
            "trigger": {**trigger, "headers": redact(trigger.get("headers") or {})},
            "idempotency_key": job.get("idempotency_key"),
            "retry_of": uuid.UUID(job["retry_of"]) if job.get("retry_of") else None,
            "accepted_at": received_at or started_at,
            "started_at": started_at,
        }

        start = await db.run(
            "claim the run", _START_TRIES, lambda conn: repository.start_run(conn, values)
        )
        if isinstance(start, repository.AlreadyFinished):
            log.info("run already finished; redelivered job ignored", extra=ids)
            return "already-finished"
        if isinstance(start, repository.WorkflowGone):
            log.warning("workflow deleted before its run started; job dropped", extra=ids)
            return "workflow-gone"
        if isinstance(start, repository.DuplicateDelivery):
            error = f"duplicate delivery of run {start.holder}"
            await db.run(
                "record the duplicate",
                _START_TRIES,
                lambda conn: repository.record_duplicate(conn, values, error, started_at),
            )
            metrics.RUNS.labels("cancelled").inc()
            log.info("duplicate delivery cancelled: %s", error, extra=ids)
            return "cancelled"

        attempt = start.attempt
        span.set_attribute(RUN_ATTEMPT, attempt)
        if attempt == 1 and received_at is not None:
            metrics.QUEUE_WAIT.observe(max(0.0, (started_at - received_at).total_seconds()))
        version = await self._version(db, job["workflow_id"], workflow_id, job["workflow_version"])
        if version.error is not None:
            outcome = RunOutcome(FAILED, version.error, [])
        else:
            identity = RunIdentity(job["run_id"], job["workflow_id"], attempt)
            outcome = await self.runner.run(identity, trigger, version.nodes, deadline)
        if outcome.status == FAILED:
            span.set_status(StatusCode.ERROR, outcome.error)

        elapsed = time.perf_counter() - clock
        steps = [step.as_row() for step in outcome.steps]
        applied = await db.run(
            "record the run",
            _FINISH_TRIES,
            lambda conn: repository.finish_run(
                conn,
                run_id=run_id,
                attempt=attempt,
                status=outcome.status,
                error=outcome.error,
                finished_at=datetime.now(UTC),
                duration_ms=int(elapsed * 1000),
                steps=steps,
            ),
        )
        if not applied:
            log.warning(
                "a later delivery took this run over; this delivery's record is discarded",
                extra={**ids, "attempt": attempt},
            )
            return "superseded"
        metrics.RUNS.labels(outcome.status).inc()
        metrics.RUN_DURATION.labels(outcome.status).observe(elapsed)
        log.info(
            "run %s",
            outcome.status,
            extra={
                **ids,
                "status": outcome.status,
                "attempt": attempt,
                "duration_ms": int(elapsed * 1000),
                "error": outcome.error,
            },
        )
        return outcome.status

    async def _version(
        self, db: _DeliveryConnection, key: str, workflow_id: uuid.UUID, version: int
    ) -> LoadedVersion:
        cached = self.versions.get(key, version)
        if cached is not None:
            return cached
        raw = await db.run(
            "load the workflow version",
            _START_TRIES,
            lambda conn: repository.load_nodes(conn, workflow_id, version),
        )
        if raw is None:
            # Not cached: a version row written late (a replica lagging) may yet appear.
            return LoadedVersion(error=f"workflow version {version} not found")
        loaded = parse_nodes(raw)
        self.versions.put(key, version, loaded)
        return loaded


class _DeliveryConnection:
    """One pooled connection for all of a delivery's statements, replaced if it breaks.

    A checkout per statement measured ~0.4 ms each; the process runs one job at a time, so
    holding the connection while nodes run takes nothing from anyone.
    """

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db
        self.conn: AsyncConnection | None = None

    async def run(
        self, what: str, tries: int, operation: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        delay = 0.2
        for attempt in range(1, tries + 1):
            try:
                if self.conn is None:
                    self.conn = await self.db.connect()
                return await operation(self.conn)
            except Exception as exc:
                if attempt == tries or not _is_transient(exc):
                    raise
                await self.close()
                log.warning(
                    "database unavailable to %s (%s); retrying in %.1fs",
                    what,
                    type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):
                await conn.close()
