"""The runs API: history, one run with its steps, manual runs and retries."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, HTTPException, Query, Request, Response, status
from opentelemetry.trace import Span, SpanKind, StatusCode
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.cursors import InvalidCursor, decode_cursor, encode_cursor, invalid_cursor
from services.workflows.deps import (
    EnqueuerDep,
    RedisDep,
    RunId,
    SessionDep,
    SettingsDep,
    WorkflowId,
)
from services.workflows.runs import replay, service, waiting
from services.workflows.runs.repository import RunFilter, RunRepository
from services.workflows.runs.schemas import ReplayIn, RunAccepted, RunOut, RunPage, RunStatus
from services.workflows.runs.service import RunEnded, RunNotFound
from services.workflows.workflows import service as workflows
from services.workflows.workflows.repository import WorkflowRepository
from services.workflows.workflows.service import WorkflowNotFound
from shared.db.models import WorkflowRun
from shared.flow import FlowSpec, spec_of
from shared.queue import RunEnqueuer
from shared.telemetry import (
    HTTP_METHOD,
    HTTP_ROUTE,
    HTTP_STATUS_CODE,
    RUN_ID,
    WORKFLOW_ID,
    context_from_traceparent,
    current_traceparent,
    tracer,
)
from shared.tokens import CurrentUserId

log = logging.getLogger(__name__)
_tracer = tracer(__name__)

router = APIRouter(tags=["runs"])

_ANY_JSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "Any JSON value; it becomes `trigger.body` of the run.",
        "content": {"application/json": {"schema": {}}},
    }
}


def _before(cursor: str | None) -> uuid.UUID | None:
    if cursor is None:
        return None
    try:
        [run_id] = decode_cursor(cursor, 1)
        return uuid.UUID(run_id)
    except (InvalidCursor, TypeError, ValueError):
        raise invalid_cursor() from None


RUN_ROUTE = "/workflows/{workflow_id}/run"
RETRY_ROUTE = "/runs/{run_id}/retry"
REPLAY_ROUTE = "/runs/{run_id}/replay"


def _status_of(exc: Exception) -> int:
    """The status the app's exception handlers (app.py) answer `exc` with."""
    if isinstance(exc, HTTPException):
        return exc.status_code
    if isinstance(exc, WorkflowNotFound | RunNotFound):
        return 404
    if isinstance(exc, RedisError):
        return 503
    return 500


@contextmanager
def _run_span(route: str, request: Request) -> Iterator[Span]:
    """The span of a request that queues a run: its traceparent goes into the job, so the
    worker's run span is its child (a child itself of the caller's span, if it sent one)."""
    with _tracer.start_as_current_span(
        f"POST {route}",
        context=context_from_traceparent(request.headers.get("traceparent")),
        kind=SpanKind.SERVER,
        attributes={HTTP_METHOD: "POST", HTTP_ROUTE: route},
        # An HTTP server decides what an error is (a 404 is not one): done below.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as exc:
            code = _status_of(exc)
            span.set_attribute(HTTP_STATUS_CODE, code)
            if code >= 500:
                span.record_exception(exc)
                span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        span.set_attribute(HTTP_STATUS_CODE, status.HTTP_202_ACCEPTED)


async def _accept(
    session: AsyncSession,
    enqueuer: RunEnqueuer,
    run: WorkflowRun,
    response: Response,
    steps: Sequence[dict[str, Any]] = (),
    flow: FlowSpec | None = None,
) -> RunAccepted:
    """Record the run as queued, then queue its job; 202 only once both hold.

    The row is committed first: queued first, a worker could start the run before our insert,
    which would then collide with the worker's row, and a failed commit would leave a job
    running that the caller was never told about. If Redis refuses the job, the row is removed
    again and the caller gets 503: never a 202 for work that was not stored.
    """
    await RunRepository(session).add(run)
    await RunRepository(session).add_steps(steps)
    await session.commit()
    try:
        await enqueuer.enqueue(service.job_for(run, current_traceparent(), flow))
    except RedisError as exc:
        extra = {"run_id": str(run.id), "error": type(exc).__name__}
        log.warning("run not queued: Redis unavailable", extra=extra)
        try:
            await RunRepository(session).delete(run.id)
            await session.commit()
        except SQLAlchemyError:
            # The caller still must not get a 202; the row stays `queued` with no job.
            log.exception("queued run without a job could not be removed", extra=extra)
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the run queue is unavailable; try again"
        ) from None
    response.headers["Location"] = f"/runs/{run.id}"
    return RunAccepted(run_id=run.id)


async def _json_body(request: Request, limit: int) -> Any:
    # 413 as a literal: starlette renamed its constant between the releases we accept.
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body over {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(
            422, [{"loc": ["body"], "msg": f"invalid JSON: {exc}", "type": "json_invalid"}]
        ) from None


@router.get("/workflows/{workflow_id}/runs", response_model=RunPage)
async def list_runs(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RunPage:
    """The workflow's recorded runs, newest first, optionally of one status.

    Runs accepted by ingest appear once a worker has recorded them (milliseconds later);
    `GET /runs/{id}` shows them from the moment of the 202.
    """
    before = _before(cursor)
    await workflows.get(session, user_id, workflow_id)
    rows = await RunRepository(session).page(workflow_id, user_id, status_, limit + 1, before)
    items = rows[:limit]
    next_cursor = encode_cursor([str(items[-1].id)]) if len(rows) > limit else None
    summaries = [service.summary(run) for run in items]
    with suppress(RedisError, OSError):
        await waiting.explain(redis, settings.queue_name, summaries)
    return RunPage(items=summaries, next_cursor=next_cursor)


def _aware(name: str, value: datetime | None) -> datetime | None:
    """A time filter in UTC: a bare one is taken as UTC (what the API prints)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted by its offset out of range
        raise HTTPException(
            422, [{"loc": ["query", name], "msg": "out of range", "type": "value_error"}]
        ) from None


@router.get("/runs", response_model=RunPage)
async def list_all_runs(
    user_id: CurrentUserId,
    session: SessionDep,
    status_: Annotated[RunStatus | None, Query(alias="status")] = None,
    workflow_id: Annotated[uuid.UUID | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="ISO 8601; accepted at or after")] = None,
    until: Annotated[datetime | None, Query(description="ISO 8601; accepted before")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> RunPage:
    """The caller's recorded runs across all their workflows, newest first, filtered.

    A time without a zone is UTC. A `workflow_id` that is not the caller's lists nothing.
    """
    before = _before(cursor)
    since, until = _aware("since", since), _aware("until", until)
    if since is not None and until is not None and since >= until:
        raise HTTPException(
            422,
            [{"loc": ["query", "until"], "msg": "must be after 'since'", "type": "value_error"}],
        )
    where = RunFilter(status=status_, workflow_id=workflow_id, since=since, until=until)
    return await service.owner_page(session, user_id, where, limit, before)


@router.get("/runs/{run_id}", response_model=RunOut)
async def get_run(
    user_id: CurrentUserId,
    run_id: RunId,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> RunOut:
    """The run with its steps in execution order; `queued` (no steps) until a worker starts it.

    A queued or waiting run says why in `waiting_reason` and `waiting_detail`.
    """
    return await service.find(session, redis, user_id, run_id, settings.queue_name)


@router.post(
    "/workflows/{workflow_id}/run",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
    openapi_extra=_ANY_JSON_BODY,
)
async def run_workflow(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    request: Request,
    response: Response,
    session: SessionDep,
    enqueuer: EnqueuerDep,
    settings: SettingsDep,
) -> RunAccepted:
    """Start a run now, on the current version; the request JSON becomes `trigger.body`."""
    with _run_span(RUN_ROUTE, request) as span:
        span.set_attribute(WORKFLOW_ID, str(workflow_id))
        workflow = await workflows.get(session, user_id, workflow_id)
        body = await _json_body(request, settings.max_body_bytes)
        if isinstance(body, dict) and set(body) == {"from_run"}:
            body = await _pinned_body(session, user_id, body["from_run"])
        run = service.new_run(workflow, dict(service.manual_trigger(body)), retry_of=None)
        span.set_attribute(RUN_ID, str(run.id))
        return await _accept(session, enqueuer, run, response, flow=spec_of(workflow.flow))


async def _pinned_body(session: AsyncSession, user_id: uuid.UUID, from_run: Any) -> Any:
    """The trigger body of the caller's past run `from_run` (`{"from_run": ...}` as the body)."""
    try:
        run_id = uuid.UUID(str(from_run))
    except ValueError:
        raise HTTPException(
            422, [{"loc": ["body", "from_run"], "msg": "not a run id", "type": "uuid_parsing"}]
        ) from None
    past = await RunRepository(session).get(run_id)
    if past is None or past.owner_id != user_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such run (from_run)")
    return past.trigger.get("body")


@router.post(
    "/runs/{run_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RunAccepted,
)
async def replay_run_endpoint(
    user_id: CurrentUserId,
    run_id: RunId,
    request: Request,
    response: Response,
    session: SessionDep,
    enqueuer: EnqueuerDep,
    body: Annotated[ReplayIn | None, Body()] = None,
) -> RunAccepted:
    """Run the run's input again as a new run (`replay_of`), reusing the recorded outputs of
    the steps before `from_step`: their effects do not happen again (docs/nodes.md, "Replay").
    """
    with _run_span(REPLAY_ROUTE, request) as span:
        try:
            run, steps = await replay.prepare(session, user_id, run_id, body or ReplayIn())
        except replay.ReplayRefused as exc:
            raise HTTPException(exc.status, exc.detail) from None
        span.set_attribute(WORKFLOW_ID, str(run.workflow_id))
        span.set_attribute(RUN_ID, str(run.id))
        return await _accept(session, enqueuer, run, response, steps)


@router.post(
    "/runs/{run_id}/retry", status_code=status.HTTP_202_ACCEPTED, response_model=RunAccepted
)
async def retry_run(
    user_id: CurrentUserId,
    run_id: RunId,
    request: Request,
    response: Response,
    session: SessionDep,
    redis: RedisDep,
    enqueuer: EnqueuerDep,
) -> RunAccepted:
    """Run the same trigger input again as a new run on the workflow's *current* version."""
    with _run_span(RETRY_ROUTE, request) as span:
        original = await service.find(session, redis, user_id, run_id)
        span.set_attribute(WORKFLOW_ID, str(original.workflow_id))
        workflow = await WorkflowRepository(session).owned(original.workflow_id, user_id)
        if workflow is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "the run's workflow no longer exists")
        run = service.new_run(workflow, original.trigger, retry_of=original.id)
        span.set_attribute(RUN_ID, str(run.id))
        return await _accept(session, enqueuer, run, response, flow=spec_of(workflow.flow))


@router.post("/runs/{run_id}/cancel", response_model=RunOut)
async def cancel_run(
    user_id: CurrentUserId, run_id: RunId, session: SessionDep, redis: RedisDep
) -> RunOut:
    """Cancel a queued, running or waiting run; it ends as `cancelled`.

    A queued or waiting run never runs another step; a running one stops at its next step
    boundary (the step in progress finishes). 409 when the run has already ended.
    """
    try:
        await service.cancel(session, redis, user_id, run_id)
    except RunEnded as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"the run has already ended ({exc.status})"
        ) from None
    return await service.find(session, redis, user_id, run_id)
