"""`POST /hooks/resume/{token}`: the callback a parked `wait_for_callback` step waits for.

The token names the run and is authenticated by a MAC (`shared.hooks.resume_token`), so no
lookup is needed to refuse a forged one (404). The body is handed over through the run's
callback key in Redis, atomically with waking the run (`shared.waits`, the protocol): if the run
is parked, it joins the queue's wake set and the worker's due-run poller resumes it within a
second; if it is running and has not parked yet, the body waits for it there, briefly. A
callback is accepted only for a run that can still take one: the worker opens the key while a
run with a `wait_for_callback` step runs or waits, and closes it when the run took its callback
or ended; any other run is a 404, a second callback a 409. Bodies not yet taken count against
the run owner's callback storage (429 beyond it). Ingest still never touches PostgreSQL.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Request, status
from pydantic import BaseModel
from redis.exceptions import RedisError

from shared.hooks import callback_key, run_of_resume_token
from shared.settings import get_settings
from shared.waits import (
    CALLBACK_EARLY_BODY_TTL_S,
    CALLBACK_MIN_CHARGE_BYTES,
    CALLBACK_PARK_SLACK_S,
    DELIVER,
    SIZES_PREFIX,
    USAGE_PREFIX,
    wake_key,
)

# A callback body becomes a step's output, kept whole until the run resumes.
MAX_CALLBACK_BYTES = 1024 * 1024

router = APIRouter(tags=["webhooks"])


class CallbackAccepted(BaseModel):
    run_id: str
    # "resumed": the run was waiting and resumes now; "stored": it will find the body when it
    # reaches its wait.
    state: str


async def _json_body(request: Request) -> Any:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_CALLBACK_BYTES:
        raise HTTPException(413, f"callback body over {MAX_CALLBACK_BYTES} bytes")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_CALLBACK_BYTES:
            raise HTTPException(413, f"callback body over {MAX_CALLBACK_BYTES} bytes")
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"the callback body must be JSON: {exc}") from None


@router.post(
    "/hooks/resume/{token}",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CallbackAccepted,
    responses={
        404: {"description": "not a resume token, or its run cannot take a callback"},
        409: {"description": "answered"},
        429: {"description": "the run owner's callback storage is full"},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "description": "Any JSON value: it becomes the waiting step's output.",
            "content": {"application/json": {"schema": {}}},
        }
    },
)
async def resume_run(
    token: Annotated[str, Path(max_length=64)], request: Request
) -> CallbackAccepted:
    """Resume a run parked on `wait_for_callback`; the JSON body becomes the step's output."""
    settings = get_settings()
    run_id = run_of_resume_token(settings.resolved_webhook_key(), token)
    if run_id is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    body = orjson.dumps(await _json_body(request))
    try:
        outcome = await request.app.state.redis.call(
            "EVAL",
            DELIVER,
            2,
            callback_key(run_id),
            wake_key(settings.queue_name),
            body,
            int(time.time()),
            CALLBACK_EARLY_BODY_TTL_S,
            CALLBACK_PARK_SLACK_S,
            settings.callback_storage_max_bytes_per_user,
            USAGE_PREFIX,
            SIZES_PREFIX,
            run_id,
            CALLBACK_MIN_CHARGE_BYTES,
        )
    except (RedisError, OSError, TimeoutError):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the callback could not be stored; try again",
            headers={"Retry-After": "1"},
        ) from None
    if outcome == -1:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this run does not wait for a callback")
    if outcome == -2:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "the callback storage of this run's owner is full; retry later",
            headers={"Retry-After": "60"},
        )
    if outcome == 0:
        raise HTTPException(status.HTTP_409_CONFLICT, "this run already received its callback")
    return CallbackAccepted(run_id=run_id, state="resumed" if outcome == 2 else "stored")
