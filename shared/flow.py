"""Flow control of a workflow's runs: what the enqueuers and the worker both need.

A workflow may carry `concurrency`, `throttle`, `debounce` and `priority` (docs/flow-control.md).
The workflows service validates them at save and stores them; every enqueuer copies them into
the run's job (`RunJob.flow`), so the worker decides admission from the job alone: a workflow
without them has no `flow` in its jobs and pays nothing for the feature.

Keys are sandboxed templates over the trigger (`{{ trigger.body.customer }}`), rendered by
shared/flow_keys.py (apart, so the queue contract does not import the template engine).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

Priority = Literal["high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "low")
FLOW_FIELDS = ("concurrency", "throttle", "debounce", "priority")
MAX_KEY_CHARS = 200
# A key longer than this is stored by its digest (Redis keys stay short, the label readable).
_KEY_INLINE_CHARS = 64
REDIS_PREFIX = "automateos:flow:"

# Why a run that is not running waits (GET /runs/{id} `waiting_reason`): a closed set, so the
# metric that counts waiting runs by reason has bounded labels. A run its dead worker left and
# RQ re-queued waits for `queue`, with `"recovered": true` in its detail.
WAITING_REASONS = (
    "queue",
    "concurrency_limit",
    "throttled",
    "debounced",
    "delay",
    "callback",
    "child_run",
    "no_worker",
)


class ConcurrencySpec(TypedDict):
    limit: int
    key: NotRequired[str]


class ThrottleSpec(TypedDict):
    limit: int
    period_s: float
    key: NotRequired[str]


class DebounceSpec(TypedDict):
    period_s: float
    key: NotRequired[str]
    max_wait_s: NotRequired[float]


class FlowSpec(TypedDict, total=False):
    """A workflow's flow fields as stored and as carried in its jobs (all optional)."""

    concurrency: ConcurrencySpec
    throttle: ThrottleSpec
    debounce: DebounceSpec
    priority: Priority


def spec_of(options: Mapping[str, Any] | None) -> FlowSpec | None:
    """The flow fields of a stored workflow, None when it has none (the common case)."""
    if not options:
        return None
    spec: FlowSpec = {k: options[k] for k in FLOW_FIELDS if options.get(k)}  # type: ignore[assignment]
    if not spec or spec == {"priority": "normal"}:
        return None
    return spec


def queue_for(base: str, priority: str | None) -> str:
    """The RQ queue a run of this priority goes to: `<base>:high`, `<base>`, `<base>:low`."""
    if priority == "high" or priority == "low":
        return f"{base}:{priority}"
    return base


def priority_queues(base: str) -> list[str]:
    """Every queue of a deployment, highest priority first (workers and KEDA serve all)."""
    return [queue_for(base, priority) for priority in PRIORITIES]


def redis_key(kind: str, workflow_id: str, value: str) -> str:
    """`automateos:flow:<kind>:<workflow>:<key value or its digest>`."""
    if len(value) > _KEY_INLINE_CHARS or any(c in value for c in "{}\r\n"):
        value = "#" + hashlib.sha256(value.encode()).hexdigest()[:32]
    return f"{REDIS_PREFIX}{kind}:{workflow_id}:{value}"


def polled_key(base: str) -> str:
    """When a worker last asked `base`'s queues for a job with a free slot (unix seconds).

    A queued run whose queue nobody asked for `NO_WORKER_AFTER_S` waits for `no_worker`.
    """
    return f"{REDIS_PREFIX}polled:{base}"


NO_WORKER_AFTER_S = 10.0
