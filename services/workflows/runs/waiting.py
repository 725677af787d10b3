"""Why a run that is not running waits: `waiting_reason` and `waiting_detail` of the runs API.

Two sources. The run row keeps what the worker decided (a run it held back: `concurrency_limit`,
`throttled`, `debounced`; a parked run: `delay`, `callback`, `child_run`). What changes by the
second is read from Redis when the run is shown (`explain`, one pipelined round trip per page):

- `queue` with `ahead`: how many jobs are before it in its queue (RQ pops the list's head);
- `no_worker`: still queued, and no worker has asked its queues for a job for
  `NO_WORKER_AFTER_S` (stopped, frozen or saturated workers: shared.flow.polled_key);
- a held run whose turn came (its next job is on the queue) is shown as `queue`;
- `recovered`: the row says `running` but its job is back on the queue (its worker died and RQ
  re-queued it): the run is shown `queued`, waiting in the queue again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from services.workflows.runs.schemas import RunSummary
from shared.db.models import WorkflowRun
from shared.flow import NO_WORKER_AFTER_S, polled_key, priority_queues, redis_key
from shared.queue import RunJob, delivery_job_id, job_key, queue_key

# LPOS scans at most this far: a position deeper than it is reported as "at least".
_SCAN = 10_000
_HELD = frozenset({"concurrency_limit", "throttled", "debounced"})


def stored(run: WorkflowRun) -> dict[str, Any]:
    """The reason a run row records (fields of RunSummary); none for a running or ended run."""
    if run.status == "queued":
        return {
            "waiting_reason": run.waiting_reason or "queue",
            "waiting_detail": run.waiting_detail,
        }
    if run.status == "waiting":
        detail = dict(run.waiting_detail or {})
        if run.resume_at is not None:
            detail["resume_at"] = run.resume_at.isoformat()
        return {"waiting_reason": run.waiting_reason or "delay", "waiting_detail": detail}
    return {"waiting_reason": None, "waiting_detail": None}


def of_job(rq_status: str, job: RunJob) -> dict[str, Any]:
    """The reason of a run known only by its job (no worker has recorded it yet)."""
    flow = job.get("flow") or {}
    detail: dict[str, Any] = {"job_id": delivery_job_id(job)}
    if rq_status == "scheduled" and "debounce" in flow:
        return {"waiting_reason": "debounced", "waiting_detail": detail}
    return {"waiting_reason": "queue", "waiting_detail": detail}


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode()
    return None if value is None else str(value)


def _age_s(run: RunSummary, now: float) -> float:
    accepted = run.accepted_at
    if accepted is None:
        return 0.0
    moment = accepted if accepted.tzinfo else accepted.replace(tzinfo=UTC)
    return now - moment.timestamp()


async def explain(client: aioredis.Redis, base: str, runs: Sequence[RunSummary]) -> None:
    """Refine the reasons of the queued (and recovered) runs among `runs` from Redis, in place."""
    asks: list[tuple[RunSummary, str, str]] = []
    for run in runs:
        detail = run.waiting_detail or {}
        if run.status == "running":
            asks.append((run, "recovered", str(run.id)))
        elif run.status == "queued":
            asks.append((run, run.waiting_reason or "queue", detail.get("job_id") or str(run.id)))
    if not asks:
        return
    queues = priority_queues(base)
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(polled_key(base))
        for run, reason, job_id in asks:
            if reason == "recovered":
                pipe.hget(job_key(job_id), "status")
            elif reason == "concurrency_limit":
                key = redis_key("conc", str(run.workflow_id), str(detail_of(run).get("key", "")))
                pipe.zrank(key + ":waiting", str(run.id))
            for queue in queues:
                pipe.lpos(queue_key(queue), job_id, maxlen=_SCAN)
        replies = await pipe.execute()
    polled = _text(replies[0])
    last_poll = float(polled) if polled else None
    now = time.time()
    position = 1
    for run, reason, _job_id in asks:
        special: Any = None
        if reason in ("recovered", "concurrency_limit"):
            special = replies[position]
            position += 1
        found = [reply for reply in replies[position : position + len(queues)] if reply is not None]
        position += len(queues)
        if reason == "recovered":
            if _text(special) != "queued":
                continue
            run.status = "queued"
            _set(run, "queue", {"recovered": True})
        elif reason == "concurrency_limit" and special is not None:
            _set(run, reason, {**detail_of(run), "ahead": int(special)})
            continue
        elif reason in _HELD and not found:
            continue  # still held back: the stored reason stands
        elif reason not in _HELD and reason != "queue":
            continue
        else:
            _set(run, "queue", {})
        detail = detail_of(run)
        if found:
            detail["ahead"] = int(found[0])
        idle = last_poll is None or now - last_poll > NO_WORKER_AFTER_S
        if idle and _age_s(run, now) > NO_WORKER_AFTER_S:
            detail["last_poll_at"] = (
                None if last_poll is None else datetime.fromtimestamp(last_poll, UTC).isoformat()
            )
            run.waiting_reason = "no_worker"


def detail_of(run: RunSummary) -> dict[str, Any]:
    if run.waiting_detail is None:
        run.waiting_detail = {}
    return run.waiting_detail


def _set(run: RunSummary, reason: str, extra: dict[str, Any]) -> None:
    run.waiting_reason = reason
    run.waiting_detail = {**(run.waiting_detail or {}), **extra}
