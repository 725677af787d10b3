"""One delivery of a run job: claim the run, run its nodes, record or park the outcome.

A run of pure nodes costs two statements (the claim and the final write) plus one the first
time a process meets a workflow version. An effectful step adds one (its checkpoint, written
before the next step starts); a redelivered or resumed run one more (the steps to reuse); a
long wait parks the run: one statement (a callback wait also marks its Redis key).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry.trace import Span, SpanKind, StatusCode
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker import metrics
from services.worker.engine import items, repository
from services.worker.engine.cancels import CancelWatch
from services.worker.engine.children import ChildPark
from services.worker.engine.data_budget import RunDataBudget
from services.worker.engine.delivery import DeliveryConnection, DeliveryHooks
from services.worker.engine.fairness import run_cpu
from services.worker.engine.finishing import FINISH_TRIES, record_finished
from services.worker.engine.followups import Followups
from services.worker.engine.parking import Parking
from services.worker.engine.records import encode_json, redact
from services.worker.engine.runner import (
    FAILED,
    WAITING,
    NodeRunner,
    RecordedStep,
    Resume,
    RunIdentity,
    RunOutcome,
    StepRecord,
)
from services.worker.engine.scheduler import DEFAULT_MAX_PARALLEL, GraphRunner
from services.worker.engine.versions import LoadedVersion, VersionCache, parse_nodes
from services.worker.flow.gate import FlowGate
from shared.nodes import Park
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

# The node whose runs take a callback on their resume URL (parking.py keeps the key).
CALLBACK_NODE = "wait_for_callback"
_tracer = tracer(__name__)

# The final write is worth waiting for, because failing it means the job is re-run and its
# nodes' side effects happen again. The claim waits as long: a claim that gives up fails the
# job, and RQ's retries follow at once, so with 3 tries (~1.4 s) a 3 s PostgreSQL restart
# exhausted every retry of 8-22 of 157 accepted runs (tests/chaos/test_postgres.py). 8 tries
# span ~16 s, and each of RQ's retries as long again.
_START_TRIES = 8


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


def _recorded(row: dict[str, Any]) -> RecordedStep:
    def fragment(value: Any) -> orjson.Fragment | None:
        return None if value is None else orjson.Fragment(encode_json(value))

    record = StepRecord(
        row["position"],
        row["node_id"],
        row["type"],
        row["status"],
        input=fragment(row["input"]),
        output=fragment(row["output"]),
        error=row["error"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        resume_output=fragment(row["resume_output"]),
    )
    return RecordedStep(record, row["resume_output"])


class RunEngine:
    """Executes run jobs against one database engine, node runner and version cache."""

    def __init__(
        self,
        db: AsyncEngine,
        runner: NodeRunner,
        versions: VersionCache,
        parking: Parking,
        followups: Followups | None = None,
        data_budget: RunDataBudget | None = None,
        flow: FlowGate | None = None,
        *,
        run_max_parallel: int = DEFAULT_MAX_PARALLEL,
    ) -> None:
        self.db = db
        self.runner = runner
        self.graph = GraphRunner(runner, max_parallel=run_max_parallel)
        self.versions = versions
        self.parking = parking
        self.followups = followups
        self.data_budget = data_budget
        # Admission of flow-controlled runs (concurrency, throttle); only jobs with `flow`.
        self.flow = flow
        self.cancels = CancelWatch(parking.client)

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
            db = DeliveryConnection(self.db)
            try:
                held = None
                if self.flow is not None and "flow" in job and "resume_step" not in job:
                    # Before the claim: a run held back holds no worker slot (flow/gate.py).
                    job, held = await self.flow.admit(job, db)
                if held is not None:
                    result = held
                else:
                    with run_cpu(self.runner.cpu_budget_s):
                        result = await self._execute(job, job_timeout_s, db, span)
            finally:
                self.cancels.forget(job["run_id"])
                await db.close()
            span.set_attribute(RUN_STATUS, result)
            if self.flow is not None and ("flow" in job or "resume_step" in job):
                # A resumed run may hold a place its continuation's job no longer names.
                await self.flow.settle(job, result)
            return result

    async def _execute(
        self, job: RunJob, job_timeout_s: float, db: DeliveryConnection, span: Span
    ) -> str:
        deadline = asyncio.get_running_loop().time() + run_budget(job_timeout_s)
        clock = time.perf_counter()
        started_at = datetime.now(UTC)
        run_id = uuid.UUID(job["run_id"])
        workflow_id = uuid.UUID(job["workflow_id"])
        trigger = job["trigger"]
        ids = {"run_id": job["run_id"], "workflow_id": job["workflow_id"]}
        received_at = _parse_time(trigger.get("received_at"))
        resume_step = job.get("resume_step")
        flag = self.cancels.track(job["run_id"])

        if resume_step is None:
            attempt = await self._claim(job, db, run_id, workflow_id, started_at, ids)
            if isinstance(attempt, str):
                if attempt == "already-finished" and self.followups is not None:
                    # Follow-ups check out connections of their own: hold none meanwhile.
                    await db.close()
                    await self.followups.after_redelivery(job)
                return attempt
            if attempt == 1 and received_at is not None:
                metrics.QUEUE_WAIT.observe(max(0.0, (started_at - received_at).total_seconds()))
        else:
            resumed = await db.run(
                "resume the run",
                _START_TRIES,
                lambda conn: repository.resume_run(conn, run_id, resume_step, started_at),
            )
            if resumed is None:
                log.info("parked run no longer waits there; continuation ignored", extra=ids)
                if self.followups is not None:
                    # Cancelled while parked: a parent waiting for it learns so now.
                    await db.close()
                    await self.followups.after_redelivery(job)
                return "not-waiting"
            attempt = resumed
        span.set_attribute(RUN_ATTEMPT, attempt)

        version = await self._version(db, job["workflow_id"], workflow_id, job["workflow_version"])
        resume = Resume()
        # A replay's first delivery reuses the steps copied from the run it replays.
        if attempt > 1 or job.get("replay_of"):
            rows = await db.run(
                "load the recorded steps",
                _START_TRIES,
                lambda conn: repository.recorded_steps(conn, run_id),
            )
            resume.recorded = {row["position"]: _recorded(row) for row in rows}
            if version.plan is not None and version.plan.for_each:
                resume.items = await db.run(
                    "load the recorded items",
                    _START_TRIES,
                    lambda conn: items.recorded_items(conn, run_id),
                )
        hold = version.error is None and all(
            (spec := self.runner.registry.get(node.type)) is not None and spec.runs_inline
            for node in version.nodes
        )
        if not hold:
            # Its nodes will wait: leave the connection to runs that have statements to send.
            await db.close()
        hooks = DeliveryHooks(
            db,
            self.parking,
            flag,
            run_id=run_id,
            attempt=attempt,
            hold_connection=hold,
            children=self.followups.children if self.followups else None,
        )
        takes_callbacks = version.error is None and any(
            node.type == CALLBACK_NODE for node in version.nodes
        )
        if takes_callbacks:
            await self.parking.open_callback(job, job_timeout_s)
        if version.error is not None:
            outcome = RunOutcome(FAILED, version.error, [])
        else:
            identity = RunIdentity(job["run_id"], job["workflow_id"], attempt, job["owner_id"])
            try:
                if version.plan is None:
                    outcome = await self.runner.run(
                        identity, trigger, version.nodes, deadline, hooks, resume
                    )
                else:
                    outcome = await self.graph.run(
                        identity, trigger, version.nodes, version.plan, deadline, hooks, resume
                    )
            except Exception as exc:
                # A bug of ours must end the run with a reason, never leave it `running`.
                log.exception("engine error while running nodes", extra=ids)
                outcome = RunOutcome(FAILED, f"internal error: {type(exc).__name__}: {exc}", [])
        if outcome.status == FAILED:
            span.set_status(StatusCode.ERROR, outcome.error)
        if outcome.status == WAITING and outcome.park is not None:
            return await self._park(job, db, run_id, attempt, outcome, ids)
        if self.data_budget is not None:
            await self.data_budget.apply(job["workflow_id"], outcome.steps)
        result = await record_finished(db, run_id, attempt, outcome, clock, ids)
        if takes_callbacks and result != "superseded":
            # The run ended: no callback may be stored for it any more.
            await self.parking.close_callback(job["run_id"])
        if self.followups is not None and result == outcome.status:
            await db.close()
            await self.followups.after_end(job, result)
        return result

    async def _claim(
        self,
        job: RunJob,
        db: DeliveryConnection,
        run_id: uuid.UUID,
        workflow_id: uuid.UUID,
        started_at: datetime,
        ids: dict[str, str],
    ) -> int | str:
        """The delivery's attempt number, or why nothing runs."""
        trigger = job["trigger"]
        values: dict[str, Any] = {
            "id": run_id,
            "workflow_id": workflow_id,
            "owner_id": uuid.UUID(job["owner_id"]),
            "workflow_version": job["workflow_version"],
            # Signature and auth headers are credentials: the record keeps their names only.
            "trigger": {**trigger, "headers": redact(trigger.get("headers") or {})},
            "idempotency_key": job.get("idempotency_key"),
            "retry_of": uuid.UUID(job["retry_of"]) if job.get("retry_of") else None,
            "accepted_at": _parse_time(trigger.get("received_at")) or started_at,
            "started_at": started_at,
        }
        start = await db.run(
            "claim the run", _START_TRIES, lambda conn: repository.start_run(conn, values)
        )
        if isinstance(start, repository.AlreadyFinished):
            log.info("run finished, cancelled or parked; redelivered job ignored", extra=ids)
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
        return start.attempt

    async def _park(
        self,
        job: RunJob,
        db: DeliveryConnection,
        run_id: uuid.UUID,
        attempt: int,
        outcome: RunOutcome,
        ids: dict[str, str],
    ) -> str:
        """Checkpoint the run as `waiting`, then schedule what resumes it."""
        park = outcome.park
        assert park is not None
        rows = [step.as_row(keep_resume=True) for step in outcome.steps]
        parked = await db.run(
            "park the run",
            FINISH_TRIES,
            lambda conn: repository.park_run(
                conn,
                run_id=run_id,
                attempt=attempt,
                position=park.position,
                resume_at=park.resume_at,
                steps=rows,
                reason=_park_reason(park.park),
                queue=self.parking.enqueuer.queue_name,
            ),
        )
        if not parked:
            log.info("run cancelled or taken over before it could park", extra=ids)
            return "cancelled"
        # After the database says `waiting`, which is all a timer needs (the due-run poller
        # resumes it). A crash before a callback wait is marked in Redis leaves the run to
        # resume at its timeout, where the callback that came meanwhile is found.
        await self.parking.schedule(job, park.position, park.resume_at, callback=park.park.callback)
        if self.followups is not None:
            await db.close()
            await self.followups.after_park(job, park.position, park.park)
        reason = "callback" if park.park.callback else "timer"
        metrics.RUNS_PARKED.labels(reason).inc()
        log.info(
            "run waiting until %s (%s)",
            park.resume_at.isoformat(),
            reason,
            extra={**ids, "attempt": attempt},
        )
        return WAITING

    async def _version(
        self, db: DeliveryConnection, key: str, workflow_id: uuid.UUID, version: int
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


def _park_reason(park: Park) -> str:
    """The `waiting_reason` a parked run shows (shared/flow.py WAITING_REASONS)."""
    if isinstance(park, ChildPark):
        return "child_run"
    return "callback" if park.callback else "delay"
