"""Metrics written by the worker processes (prometheus-client multiprocess mode).

Each process writes its samples to memory-mapped files in the supervisor's private
`PROMETHEUS_MULTIPROC_DIR`; the supervisor merges them on scrape. Gauges that describe the
present (queue depth, heartbeat age, memory) are computed by the supervisor at scrape time
instead, see `collectors.py`. Labels are bounded: node types come from the registry, statuses
from fixed sets.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
