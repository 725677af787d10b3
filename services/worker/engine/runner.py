"""Run a workflow's nodes in order and describe what happened, step by step.

No I/O of its own besides what the nodes do and what it asks of its `RunHooks`: the engine
(service.py) loads the definition, writes checkpoints and the final record, parks and cancels.

Durable execution, Temporal's idea without its machinery: an effectful step's record is
written (`hooks.checkpoint`) before the next step starts, and a later delivery of the same run
reuses that record instead of executing the step again; pure steps are cheaper to recompute
than to store, so a run of pure nodes writes nothing until its end. The last effectful step,
when only inline steps without effects follow it, is recorded by the final write instead, or
by a checkpoint if they outlast a deadline (deferred.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson

from services.worker.engine.children import ChildPark, ChildResult, ChildRuns, child_step_end
from services.worker.engine.credentials import CredentialVault
from services.worker.engine.deferred import DeferredRecord
from services.worker.engine.fairness import FairRenderer
from services.worker.engine.items import RecordedItem
from services.worker.engine.records import encode_json, record_payload
from services.worker.engine.steps import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    WAITING,
    RunIdentity,
    StepExecutor,
    StepRecord,
    StepResult,
    observe,
)
from services.worker.loop import EngineLoop
from shared.hooks import resume_url
from shared.nodes import NodeDefinition, NodeError, NodeRegistry, Park

CANCELLED = "cancelled"
# (status, run error, note on the steps not run) of a run stopped by a cancellation.
_CANCELLED = (CANCELLED, "cancelled", "skipped: run cancelled")

__all__ = [
    "CANCELLED",
    "FAILED",
    "SKIPPED",
    "SUCCEEDED",
    "WAITING",
    "NodeRunner",
    "ParkRequest",
    "RecordedStep",
    "Resume",
    "RunHooks",
    "RunIdentity",
    "RunOutcome",
    "StepRecord",
]


@dataclass(frozen=True)
class RecordedStep:
    """A step an earlier delivery recorded: reused as is when its node had effects."""

    record: StepRecord
    output: Any


@dataclass(frozen=True)
class ParkRequest:
    """Where the run parks: the waiting step's position and when it resumes."""

    position: int
    resume_at: datetime
    park: Park


@dataclass
class Resume:
    """What earlier deliveries left: the steps recorded for reuse, by position (a `waiting`
    one is the parked step this delivery ends)."""

    recorded: dict[int, RecordedStep] = field(default_factory=dict)
    # For-each items recorded for reuse, by step position then item index (graph runs only).
    items: dict[int, dict[int, RecordedItem]] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """The result of running the nodes: final status, the run's error, all steps so far."""

    status: str
    error: str | None
    steps: list[StepRecord]
    park: ParkRequest | None = None
    # The rows of for-each items (engine/items.py), written with the steps.
    item_rows: list[dict[str, Any]] = field(default_factory=list)


class RunHooks(Protocol):
    """What the runner asks of the engine while a run executes."""

    def cancelled(self) -> bool:
        """Whether the run was cancelled (checked at every step boundary)."""

    async def checkpoint(self, steps: Sequence[StepRecord]) -> bool:
        """Durably record these steps; False when the run is no longer ours to continue."""

    async def take_callback(self) -> tuple[bool, Any]:
        """The resume URL's callback for a parked `wait_for_callback`: (arrived, body)."""

    async def child_result(self, child_run_id: str) -> ChildResult | None:
        """How the run's child run ended, or None while it has not (a `call_workflow` wait)."""


class NodeRunner:
    """Executes runs' nodes; one per process, shared by every run in flight."""

    def __init__(
        self,
        registry: NodeRegistry,
        http: httpx.AsyncClient,
        *,
        payload_max_bytes: int,
        max_retry_wait_s: float,
        engine_loop: EngineLoop | None = None,
        public_url: str = "",
        resume_key: bytes = b"",
        park_after_s: float = 5.0,
        credentials: CredentialVault | None = None,
        renderer: FairRenderer | None = None,
        cpu_budget_s: float = 30.0,
        children: ChildRuns | None = None,
    ) -> None:
        self.registry = registry
        # Each delivery's CPU budget (engine/fairness.py), opened by the engine around `run`.
        self.cpu_budget_s = cpu_budget_s
        self.public_url = public_url
        self.resume_key = resume_key
        self.steps = StepExecutor(
            http,
            payload_max_bytes=payload_max_bytes,
            max_retry_wait_s=max_retry_wait_s,
            engine_loop=engine_loop,
            park_after_s=park_after_s,
            credentials=credentials,
            renderer=renderer,
            children=children,
        )

    def context(self, run: RunIdentity, trigger: Mapping[str, Any]) -> dict[str, Any]:
        """The templating context a run starts with."""
        return {
            "trigger": trigger,
            "steps": {},
            "run": {
                "id": run.run_id,
                "workflow_id": run.workflow_id,
                "attempt": run.attempt,
                "resume_url": resume_url(self.public_url, self.resume_key, run.run_id),
            },
        }

    async def run(
        self,
        run: RunIdentity,
        trigger: Mapping[str, Any],
        nodes: Sequence[NodeDefinition],
        deadline: float,
        hooks: RunHooks,
        resume: Resume | None = None,
    ) -> RunOutcome:
        """Run `nodes` in order until one fails, halts, parks, or `deadline` (loop time) passes.

        Every node gets a record: the ones never reached are `skipped` (except after a park,
        where the rest is still to come).
        """
        resume = resume or Resume()
        context = self.context(run, trigger)
        steps: list[StepRecord] = []
        pending: list[StepRecord] = []  # records not written yet (pure steps since a checkpoint)
        status, error, skip_note = SUCCEEDED, None, None
        park: ParkRequest | None = None
        current: StepRecord | None = None
        step_clock = 0.0
        last_slow = self._last_slow_position(nodes)
        deferred: DeferredRecord | None = None
        try:
            async with asyncio.timeout_at(deadline):
                for position, node in enumerate(nodes):
                    if hooks.cancelled():
                        status, error, skip_note = _CANCELLED
                        break
                    recorded = resume.recorded.get(position)
                    spec = self.registry.get(node.type)
                    if recorded is not None and recorded.record.status == WAITING:
                        current = _restart(recorded.record)
                        steps.append(current)
                        result = await self._end_park(node, current, recorded, hooks)
                        # Written at once: a callback's body is taken from Redis only once.
                        if not await hooks.checkpoint([*pending, current]):
                            status, error, skip_note = _CANCELLED
                            current = None
                            break
                        pending.clear()
                    elif recorded is not None:
                        # Recorded for reuse (an effectful step, or a wait that ended): its
                        # effect happened, never repeat it.
                        steps.append(recorded.record)
                        context["steps"][node.id] = recorded.output
                        failed = recorded.record.status == FAILED
                        result = StepResult(
                            recorded.output, failure=recorded.record.error if failed else None
                        )
                    else:
                        current = StepRecord(position, node.id, node.type, "running")
                        current.started_at = datetime.now(UTC)
                        step_clock = time.perf_counter()
                        steps.append(current)
                        skipped = await self._skip_reason(node, context, current)
                        if skipped is not None:
                            current.status, current.error = SKIPPED, skipped
                            context["steps"][node.id] = None
                            pending.append(current)
                            current = None
                            continue
                        if current.status == FAILED:
                            result = StepResult(None, failure=current.error)
                        else:
                            result = await self.steps.step(
                                run, node, spec, current, context, deadline
                            )
                        if result.park is not None:
                            park = self._park(position, current, result.park, context)
                            status, current = WAITING, None
                            break
                        if spec is not None and spec.has_effects and position == last_slow:
                            # Only inline steps without effects follow: the final write records
                            # this one too, unless they outlast a deadline (deferred.py).
                            pending.append(current)
                            deferred = DeferredRecord(hooks.checkpoint, pending)
                        elif spec is not None and spec.has_effects:
                            if not await hooks.checkpoint([*pending, current]):
                                status, error, skip_note = _CANCELLED
                                current = None
                                break
                            pending.clear()
                        else:
                            pending.append(current)
                    current = None
                    # A failed step's output is only visible to later steps when the run goes on.
                    context["steps"][node.id] = result.output
                    if result.halted is not None:
                        skip_note = f"skipped: {result.halted} (run ended by node '{node.id}')"
                        break
                    if result.failure is not None and not node.continue_on_fail:
                        status = FAILED
                        error = f"node '{node.id}' ({node.type}) failed: {result.failure}"
                        skip_note = f"skipped: node '{node.id}' failed"
                        break
        except TimeoutError:
            status = FAILED
            where = f" while node '{current.node_id}' was running" if current else ""
            error = f"run exceeded its deadline{where}"
            skip_note = "skipped: run deadline exceeded"
            if current is not None:
                current.status = FAILED
                current.error = "interrupted: the run's deadline was exceeded"
                current.duration_ms = int((time.perf_counter() - step_clock) * 1000)
                observe(current.type, FAILED, time.perf_counter() - step_clock)
        finally:
            if deferred is not None:
                await deferred.settle()
        if park is None:
            for node in nodes[len(steps) :]:
                steps.append(StepRecord(len(steps), node.id, node.type, SKIPPED, error=skip_note))
        return RunOutcome(status, error, steps, park)

    def _last_slow_position(self, nodes: Sequence[NodeDefinition]) -> int:
        """The position of the last node with effects or waits (unknown types count), -1 if none:
        only inline steps without effects follow it."""
        for position in range(len(nodes) - 1, -1, -1):
            spec = self.registry.get(nodes[position].type)
            if spec is None or spec.has_effects or not spec.runs_inline:
                return position
        return -1

    def _park(
        self, position: int, record: StepRecord, park: Park, context: dict[str, Any]
    ) -> ParkRequest:
        """Describe the park: what the waiting step shows, and what its resume needs."""
        resume_at = datetime.fromtimestamp(time.time() + park.resume_in_s, tz=UTC)
        shown: dict[str, Any] = {"resume_at": resume_at.isoformat()}
        if park.callback:
            shown["resume_url"] = context["run"]["resume_url"]
            shown["timeout_s"] = park.resume_in_s
        state: dict[str, Any] = {
            "callback": park.callback,
            "timeout_s": park.resume_in_s,
            "output": park.output,
        }
        if isinstance(park, ChildPark):
            shown["child_run_id"] = state["child_run_id"] = park.child_run_id
        record.output = record_payload(shown, self.steps.payload_max_bytes)
        record.resume_output = orjson.Fragment(encode_json(state))
        return ParkRequest(position, resume_at, park)

    async def _skip_reason(
        self, node: NodeDefinition, context: dict[str, Any], record: StepRecord
    ) -> str | None:
        """Evaluate the node's `if`; the skip note when it is falsy, None to run the node.

        A condition that cannot be evaluated fails the step (the record says why).
        """
        if node.condition is None:
            return None
        try:
            holds = await self.steps.renderer.render(node.condition, context)
        except NodeError as exc:
            record.status, record.error = FAILED, f"condition failed: {exc.message}"
            return None
        if holds:
            return None
        return f"skipped: condition {node.condition!r} was false"

    async def _end_park(
        self,
        node: NodeDefinition,
        record: StepRecord,
        recorded: RecordedStep,
        hooks: RunHooks,
    ) -> StepResult:
        """Finish the parked step this delivery resumes: the timer fired or the callback came."""
        spec = self.registry.get(node.type)
        parked = recorded.output if isinstance(recorded.output, dict) else {}
        if parked.get("child_run_id"):
            ended = await hooks.child_result(parked["child_run_id"])
            record.status, output, error = child_step_end(
                parked["child_run_id"], parked.get("timeout_s", 0), ended
            )
            record.error = error
        elif parked.get("callback"):
            arrived, body = await hooks.take_callback()
            if arrived:
                record.status, output = SUCCEEDED, body
            else:
                message = f"no callback within {parked.get('timeout_s', 0):g}s"
                record.status, record.error, output = FAILED, message, {"error": message}
        else:
            record.status, output = SUCCEEDED, parked.get("output")
        self.steps.record_output(record, spec, output)
        # Reusable like an effectful step: a later delivery must not wait (or ask) again.
        record.resume_output = orjson.Fragment(encode_json(output))
        if record.started_at is not None:
            waited = (datetime.now(UTC) - record.started_at).total_seconds()
            record.duration_ms = int(waited * 1000)
        observe(node.type if spec else "unknown", record.status, 0.0)
        if record.status == FAILED:
            return StepResult(output, failure=record.error)
        return StepResult(output)


def _restart(record: StepRecord) -> StepRecord:
    # The parked step's record, to be completed by this delivery.
    return StepRecord(
        record.position,
        record.node_id,
        record.type,
        WAITING,
        input=record.input,
        attempt=record.attempt,
        started_at=record.started_at,
    )
