"""The queue contract between the enqueuers (ingest, workflows) and the worker.

One RQ job per run on `rq:queue:<queue name>`: job id = run id, the function named by its dotted
path (so no enqueuer imports the worker), JSON serialised, one argument: a `RunJob`.

RQ's own `Queue.enqueue_call` speaks the synchronous Redis client, which would block an asyncio
service. We let RQ build the exact commands it would send into a sync pipeline that never touches
the network, then replay them on the async client in one MULTI/EXEC round trip. The job is
therefore written byte-for-byte as RQ writes it, whatever RQ version is installed, and a test
proves a real RQ worker runs it.
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any, NotRequired, TypedDict

import orjson
import redis
import redis.asyncio as aioredis
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from shared.flow import FlowSpec, queue_for
from shared.jobtemplate import JobPacker, job_packer

JOB_FUNCTION = "services.worker.jobs.execute_run"
RQ_QUEUE_PREFIX = "rq:queue:"
RQ_JOB_PREFIX = "rq:job:"
# The run record in PostgreSQL is the result, so RQ keeps none. (The worker lets a finished
# job's hash expire rather than paying RQ's eager delete: services/worker/worker.py.)
RESULT_TTL_SECONDS = 0
FAILURE_TTL_SECONDS = 7 * 24 * 3600
# The engine records node failures itself, so an RQ-level failure means the job never finished:
# its worker died, or it timed out. Re-queue it; the run is keyed by run_id, so it resumes.
JOB_RETRIES = 3
# Run ids published here when a user cancels a run; worker processes stop those in flight at
# their next step boundary (the database row is what makes the cancellation stick).
CANCEL_CHANNEL = "automateos:run-cancelled"


class TriggerRequest(TypedDict):
    body: Any
    headers: dict[str, str]
    query: dict[str, Any]
    method: str
    received_at: str
    # The tick's time, on runs started by a schedule trigger (services/worker/scheduler.py).
    scheduled_at: NotRequired[str]


class RunJob(TypedDict):
    run_id: str
    workflow_id: str
    owner_id: str
    workflow_version: int
    trigger: TriggerRequest
    idempotency_key: str | None
    traceparent: str | None
    retry_of: str | None
    # Set on a parked run's continuation: the position of the step it resumes at.
    resume_step: NotRequired[int]
    # Set on a scheduled run: when its tick was due (ISO 8601), `trigger.scheduled_at` too.
    scheduled_at: NotRequired[str]
    # Set on a `call_workflow` child run: the parent run and its step that may wait for it.
    parent_run_id: NotRequired[str]
    parent_step: NotRequired[int]
    # Set on a replay: the run whose recorded steps the new run reuses.
    replay_of: NotRequired[str]
    # The workflow's flow fields (shared/flow.py); absent for a workflow without any.
    flow: NotRequired[FlowSpec]
    # Set on a run the worker held back (throttle, concurrency): which gates it has passed,
    # and the how-manieth delivery it is, so its job id differs from the one it was held on.
    flow_passed: NotRequired[list[str]]
    flow_pass: NotRequired[int]


def queue_key(queue_name: str) -> str:
    """The Redis list RQ workers pop from (KEDA's list trigger must name exactly this)."""
    return RQ_QUEUE_PREFIX + queue_name


def job_key(run_id: str) -> str:
    return RQ_JOB_PREFIX + run_id


def continuation_job_id(run_id: str, position: int) -> str:
    """The RQ job id of a parked run's continuation at step `position` (one per park point)."""
    return f"{run_id}-p{position}"


def delivery_job_id(job: RunJob) -> str:
    """The RQ job id a delivery of `job` runs under: the run id, or its continuation's id."""
    step = job.get("resume_step")
    if step is not None:
        return continuation_job_id(job["run_id"], step)
    flow_pass = job.get("flow_pass")
    return job["run_id"] if flow_pass is None else f"{job['run_id']}-f{flow_pass}"


def job_queue(base: str, job: RunJob) -> str:
    """The queue a job goes to: its workflow's priority queue (shared/flow.py)."""
    flow = job.get("flow")
    return base if flow is None else queue_for(base, flow.get("priority"))


class RunEnqueuer:
    """Puts `RunJob`s on the queue: the one enqueue API of every producer.

    `enqueue` sends them with the async Redis client, one round trip per job; `packed` renders
    them as RESP bytes from a template RQ itself produced (shared/jobtemplate.py), for a
    producer that sends raw commands on connections of its own (ingest's hot path).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        queue_name: str,
        job_timeout_s: int,
        *,
        prerender: bool = False,
    ) -> None:
        """`prerender`: build `packed`'s template now (at start-up) rather than on first use."""
        self.client = client
        self.queue_name = queue_name
        self.job_timeout_s = job_timeout_s
        # Never connects: it only gives RQ something to build a pipeline on.
        self._offline = redis.Redis(host="offline.invalid", port=1)
        self._queue = Queue(queue_name, connection=self._offline, serializer=JSONSerializer)
        # RQ would ask the server (a blocking INFO) when building a job; the answer only
        # matters to RQ for features we do not use.
        self._queue.redis_server_version = (7, 0, 0)
        self._queues = {queue_name: self._queue}
        # One pre-rendered template per queue (priority), each checked against RQ once.
        self._packers: dict[str, JobPacker] = {}
        if prerender:
            self._packers[queue_name] = job_packer(self)

    def packed(self, job: RunJob) -> tuple[bytes, int]:
        """The job's enqueue commands as RESP bytes, and how many commands they are."""
        packer = self._packer(job)
        return packer.render(job), packer.count

    def packed_arguments(self, job: RunJob) -> tuple[bytes, int]:
        """The job's enqueue commands as script arguments (`shared.resp.RUN_COMMANDS` runs
        them), and how many arguments they are: for a script that stores the job atomically
        with a decision of its own."""
        packer = self._packer(job)
        return packer.render_arguments(job), packer.argument_count

    def _packer(self, job: RunJob) -> JobPacker:
        name = self.queue_name if "flow" not in job else job_queue(self.queue_name, job)
        packer = self._packers.get(name)
        if packer is None:
            # Built and checked against RQ once, on first use (a few ms).
            flow = job.get("flow")
            priority = None if flow is None or name == self.queue_name else flow.get("priority")
            packer = self._packers[name] = job_packer(self, priority)
        return packer

    def _queue_of(self, job: RunJob) -> Queue:
        name = job_queue(self.queue_name, job)
        queue = self._queues.get(name)
        if queue is None:
            queue = Queue(name, connection=self._offline, serializer=JSONSerializer)
            queue.redis_server_version = (7, 0, 0)
            self._queues[name] = queue
        return queue

    def commands(
        self, job: RunJob, at: datetime | None = None
    ) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        """The Redis commands RQ sends to enqueue `job` (pure CPU, no I/O).

        With `at`, RQ's commands to schedule it instead: the job waits in RQ's scheduled
        registry until a worker's recovery pass (or any RQ scheduler) moves it onto the queue.
        """
        pipe = self._offline.pipeline(transaction=True)
        options: dict[str, Any] = {
            "args": (job,),
            "job_id": delivery_job_id(job),
            "timeout": self.job_timeout_s,
            "result_ttl": RESULT_TTL_SECONDS,
            "failure_ttl": FAILURE_TTL_SECONDS,
            "retry": Retry(max=JOB_RETRIES),
            "description": f"run {job['run_id']} of workflow {job['workflow_id']}",
            "pipeline": pipe,
        }
        queue = self._queue if "flow" not in job else self._queue_of(job)
        if at is None:
            queue.enqueue_call(JOB_FUNCTION, **options)
        else:
            queue.enqueue_at(at, JOB_FUNCTION, **options)
        # redis-py buffers (args, options) pairs; newer releases wrap them in an object.
        return [
            (entry.args, entry.options) if hasattr(entry, "args") else (entry[0], entry[1])
            for entry in pipe.command_stack
        ]

    def add_to(
        self, pipeline: aioredis.client.Pipeline, job: RunJob, at: datetime | None = None
    ) -> None:
        """Queue the job's commands on a caller's async pipeline (to batch with other writes)."""
        for args, options in self.commands(job, at):
            pipeline.execute_command(*args, **options)

    async def enqueue(self, job: RunJob, at: datetime | None = None) -> None:
        """Store the job in Redis (to run at `at`, if given); returns once Redis has it.

        Raises on any failure, so a caller never reports work as accepted that was not stored.
        """
        async with self.client.pipeline(transaction=True) as pipeline:
            self.add_to(pipeline, job, at)
            await pipeline.execute()


def decode_job_data(raw: bytes) -> RunJob | None:
    """The `RunJob` inside an RQ job hash's `data` field, or None if it is not one of ours."""
    try:
        func, _instance, args, _kwargs = orjson.loads(zlib.decompress(raw))
    except (zlib.error, orjson.JSONDecodeError, ValueError, TypeError):
        return None
    if func != JOB_FUNCTION or not args or not isinstance(args[0], dict):
        return None
    job: RunJob = args[0]  # type: ignore[assignment]
    return job


async def fetch_queued_job(client: aioredis.Redis, run_id: str) -> tuple[str, RunJob] | None:
    """RQ's status and our payload for a run whose job is still in Redis, else None."""
    status, data = await client.hmget(job_key(run_id), ["status", "data"])
    if data is None:
        return None
    job = decode_job_data(data if isinstance(data, bytes) else data.encode())
    if job is None:
        return None
    status_text = status.decode() if isinstance(status, bytes) else str(status or "queued")
    return status_text, job
