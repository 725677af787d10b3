"""Worker-only tuning, read from `AUTOMATEOS_WORKER_*` (the shared settings hold the rest).

The defaults are chosen so that a worker that dies mid-job has its job re-queued within
about 20 seconds, and a worker that stops polling the queue goes unready within 8 seconds,
at a cost of a few Redis commands per second per process.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    """Process count, heartbeat and recovery intervals of the worker."""

    model_config = SettingsConfigDict(env_prefix="AUTOMATEOS_WORKER_", extra="ignore")

    processes: int = Field(1, ge=1, le=256)
    # Runs one process executes at once on its event loop. Waiting runs (a slow API, a short
    # delay) hold a slot; parked runs (a long delay, a callback) do not.
    concurrency: int = Field(32, ge=1, le=1024)
    # A `delay` longer than this parks the run instead of holding a slot while it waits.
    park_after_seconds: float = Field(5.0, ge=0)
    # The engine loop counts as stalled (logged, heartbeat withheld) after this long stuck.
    loop_stall_seconds: float = Field(2.0, gt=0)
    # How often each worker process re-queues abandoned jobs (of dead workers) and moves due
    # scheduled jobs onto the queue (one Redis script), and how often the supervisor's due-run
    # poller resumes parked runs.
    scheduler_interval_seconds: int = Field(1, ge=1, le=60)
    # Longest an idle worker blocks on the queue before it comes round to heartbeat.
    dequeue_timeout_seconds: int = Field(2, ge=1, le=60)
    # While jobs run, the consumer renews their entries in RQ's started registry this often...
    job_heartbeat_interval_seconds: int = Field(2, ge=1, le=60)
    # ...and an entry expires this long after the last renewal: a job whose worker died is
    # re-queued by the next recovery pass after that.
    job_heartbeat_ttl_seconds: int = Field(15, ge=2, le=3600)
    # RQ's worker record lives this long (+60 s) after the worker's last heartbeat.
    worker_ttl_seconds: int = Field(30, ge=5, le=3600)
    # SIGTERM: runs in flight may finish for this long; then they are cut short and re-queued
    # (a run resumes from its checkpoints). Unset: the job timeout, the longest a run can take
    # (the chart's termination grace period is the job timeout plus a drain margin).
    shutdown_grace_seconds: float | None = Field(None, ge=0, le=86_400)
    # Threads for plugins declared blocking (`runs_in_thread`), per worker process.
    blocking_threads: int = Field(8, ge=1, le=256)
    # /readyz fails when a worker process has not come round its loop for this long.
    ready_max_heartbeat_age_seconds: float = Field(8.0, gt=0)
    sweep_interval_seconds: float = Field(30.0, gt=0)
    # A run still `running` after the job timeout plus this margin, whose job is gone from
    # Redis, is marked failed by the recovery sweep.
    sweep_margin_seconds: float = Field(60.0, ge=0)
    sweep_batch: int = Field(100, ge=1, le=10_000)
    version_cache_size: int = Field(1024, ge=1)
    # Upper bound on one wait between node retries, whatever Retry-After or backoff ask for.
    max_retry_wait_seconds: float = Field(300.0, ge=0)
    # Fair CPU (engine/fairness.py): a render may hold the event loop this long before it moves
    # to a render process; a run may spend this much CPU on templates and inline nodes.
    render_slice_ms: float = Field(20.0, gt=0, le=1000)
    render_processes: int = Field(1, ge=1, le=64)
    run_cpu_budget_seconds: float = Field(30.0, gt=0)


@lru_cache
def get_worker_settings() -> WorkerSettings:
    """The process-wide worker settings."""
    return WorkerSettings()
