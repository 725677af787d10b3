"""Metrics written by the worker processes (prometheus-client multiprocess mode).

Each process writes its samples to memory-mapped files in the supervisor's private
`PROMETHEUS_MULTIPROC_DIR`; the supervisor merges them on scrape. Gauges that describe the
present (queue depth, heartbeat age, memory) are computed by the supervisor at scrape time
instead, see `collectors.py`. Labels are bounded: node types come from the registry, statuses
from fixed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# fmt: off
_SECONDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
)
# fmt: on

QUEUE_WAIT = Histogram(
    "automateos_queue_wait_seconds",
    "Time from the webhook's acceptance to the first start of its run.",
    buckets=_SECONDS,
)
RUNS = Counter(
    "automateos_runs_total", "Runs finished by this worker, by final status.", ["status"]
)
RUN_DURATION = Histogram(
    "automateos_run_duration_seconds",
    "Time from a run's start to its end (one delivery), by final status.",
    ["status"],
    buckets=_SECONDS,
)
NODE_EXECUTIONS = Counter(
    "automateos_node_executions_total",
    "Steps executed, by node type and step status (retries of one step count once).",
    ["node_type", "status"],
)
NODE_DURATION = Histogram(
    "automateos_node_duration_seconds",
    "Time a step took including its retries, by node type and step status.",
    ["node_type", "status"],
    buckets=_SECONDS,
)
NODE_RETRIES = Counter(
    "automateos_node_retries_total", "Step retries after a retryable failure.", ["node_type"]
)
# Per process (`worker` is its slot), live only: a dead process's values vanish with it.
RUNS_IN_FLIGHT = Gauge(
    "automateos_worker_runs_in_flight",
    "Runs a worker process is executing right now (parked runs hold no slot).",
    ["worker"],
    multiprocess_mode="livesum",
)
FREE_SLOTS = Gauge(
    "automateos_worker_free_slots",
    "Runs a worker process could start now before it stops taking jobs (concurrency - in flight).",
    ["worker"],
    multiprocess_mode="livesum",
)
LOOP_STALLS = Counter(
    "automateos_worker_loop_stalls_total",
    "Times a worker process's event loop was stuck longer than the stall threshold.",
)
RUNS_PARKED = Counter(
    "automateos_runs_parked_total",
    "Runs parked (status waiting) to resume later, by reason.",
    ["reason"],
)

# Both reasons exist from the start, so dashboards show 0 rather than no data.
for _reason in ("timer", "callback"):
    RUNS_PARKED.labels(_reason)
RENDERS_OFFLOADED = Counter(
    "automateos_template_renders_offloaded_total",
    "Template renders that outran their slice of the event loop and finished in a render process.",
)
RUN_CPU_BUDGET_EXCEEDED = Counter(
    "automateos_run_cpu_budget_exceeded_total",
    "Steps failed because their run spent its CPU budget.",
)

RUNS_HELD = Counter(
    "automateos_runs_held_total",
    "Deliveries the worker held back before starting their run (flow control), by reason.",
    ["reason"],
)
for _reason in ("throttled", "concurrency_limit", "debounced"):
    RUNS_HELD.labels(_reason)
