"""The graph scheduler: nodes start when their predecessors ended, several at once.

Used only for a workflow with `after` or `for_each` (engine/graph.py); a plain list runs in
runner.py's sequential loop. The durable-step rules are the same: an effectful step (or item)
is checkpointed as soon as it ends, before anything that depends on it starts, and reused by a
later delivery instead of being executed again; every write goes through the delivery's hooks,
which refuse once the run is no longer this delivery's.

Choices (docs/nodes.md): a failure (without `continue_on_fail`), a halt, a cancellation or a
park stops new nodes from starting; nodes already running finish and are recorded, so no
effect is cut off between its call and its checkpoint. When two branches park at once, the run
parks at the first; the other node runs again (and parks again) after the resume.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from services.worker.engine.foreach import ForEach
from services.worker.engine.graph import GraphPlan
from services.worker.engine.items import ItemRecord
from services.worker.engine.runner import (
    CANCELLED,
    FAILED,
    SKIPPED,
    SUCCEEDED,
    WAITING,
    NodeRunner,
    ParkRequest,
    Resume,
    RunHooks,
    RunIdentity,
    RunOutcome,
    StepRecord,
    _restart,
)
from services.worker.engine.steps import StepResult, observe
from shared.nodes import NodeDefinition

DEFAULT_MAX_PARALLEL = 8


class GraphHooks(RunHooks, Protocol):
    """The runner's hooks, plus the per-item checkpoint of for-each steps."""

    async def checkpoint_items(self, step: StepRecord, items: Sequence[ItemRecord]) -> bool:
        """Durably record these items of `step`; False when the run is no longer ours."""


@dataclass
class _Ended:
    """How one node's task ended."""

    record: StepRecord
    result: StepResult | None  # None: skipped by its condition
    items: list[ItemRecord] = field(default_factory=list)
    lost: bool = False


class GraphRunner:
    """Runs graph workflows; one per process, shared by every run in flight."""

    def __init__(self, runner: NodeRunner, *, max_parallel: int = DEFAULT_MAX_PARALLEL) -> None:
        self.runner = runner
        self.foreach = ForEach(runner.steps)
        self.max_parallel = max_parallel

    async def run(
        self,
        run: RunIdentity,
        trigger: Mapping[str, Any],
        nodes: Sequence[NodeDefinition],
        plan: GraphPlan,
        deadline: float,
        hooks: GraphHooks,
        resume: Resume | None = None,
    ) -> RunOutcome:
        """Run the graph until every node ended or was skipped, or the run stops."""
        state = _GraphRun(self, run, self.runner.context(run, trigger), nodes, plan, hooks)
        return await state.execute(deadline, resume or Resume())


class _GraphRun:
    """One delivery's walk through the graph."""

    def __init__(
        self,
        graph: GraphRunner,
        run: RunIdentity,
        context: dict[str, Any],
        nodes: Sequence[NodeDefinition],
        plan: GraphPlan,
        hooks: GraphHooks,
    ) -> None:
        self.graph = graph
        self.runner = graph.runner
        self.run = run
        self.context = context
        self.nodes = nodes
        self.plan = plan
        self.hooks = hooks
        self.records: list[StepRecord | None] = [None] * len(nodes)
        self.items: dict[int, list[ItemRecord]] = {}
        self.ran: dict[int, bool] = {}  # ended nodes: True when it ran, False when skipped
        self.running: dict[asyncio.Task[_Ended], int] = {}
        self.clocks: dict[int, float] = {}
        self.status = SUCCEEDED
        self.error: str | None = None
        self.note: str | None = None
        self.stopped = False
        self.park: ParkRequest | None = None
        # One statement at a time on the delivery's connection.
        self.writes = asyncio.Lock()
        self.items_owned = True  # False once an item checkpoint was refused

    async def execute(self, deadline: float, resume: Resume) -> RunOutcome:
        self.resume = resume
        self.deadline = deadline
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    if not self.stopped:
                        if self.hooks.cancelled():
                            self._stop(CANCELLED, "cancelled", "skipped: run cancelled")
                        else:
                            self._start_ready()
                    if not self.running:
                        break
                    done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        self._ended(self.running.pop(task), task.result())
        except TimeoutError:
            self._interrupted()
        finally:
            for task in self.running:
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
        return self._outcome()

    # --- scheduling --------------------------------------------------------------------------

    def _readiness(self, position: int) -> str:
        preds = self.plan.preds[position]
        if not preds:
            return "run"
        if self.plan.join_any[position]:
            if any(self.ran.get(p) for p in preds):
                return "run"
            return "skip" if all(p in self.ran for p in preds) else "wait"
        if not all(p in self.ran for p in preds):
            return "wait"
        if self.plan.explicit[position] and not any(self.ran[p] for p in preds):
            return "skip"
        return "run"

    def _start_ready(self) -> None:
        changed = True
        while changed:
            changed = False
            for position, node in enumerate(self.nodes):
                if self.records[position] is not None or position in self.ran:
                    continue
                readiness = self._readiness(position)
                if readiness == "skip":
                    names = ", ".join(self.nodes[p].id for p in self.plan.preds[position])
                    self._skip(position, f"skipped: every node it runs after was skipped ({names})")
                    changed = True
                elif readiness == "run" and len(self.running) < self.graph.max_parallel:
                    self._start(position, node)

    def _skip(self, position: int, note: str) -> None:
        node = self.nodes[position]
        self.records[position] = StepRecord(position, node.id, node.type, SKIPPED, error=note)
        self.context["steps"][node.id] = None
        self.ran[position] = False

    def _start(self, position: int, node: NodeDefinition) -> None:
        record = StepRecord(position, node.id, node.type, "running")
        record.started_at = datetime.now(UTC)
        self.records[position] = record
        self.clocks[position] = time.perf_counter()
        task = asyncio.create_task(self._node(position, node, record))
        self.running[task] = position

    # --- one node ----------------------------------------------------------------------------

    async def _node(self, position: int, node: NodeDefinition, record: StepRecord) -> _Ended:
        recorded = self.resume.recorded.get(position)
        spec = self.runner.registry.get(node.type)
        if recorded is not None and recorded.record.status == WAITING:
            current = _restart(recorded.record)
            self.records[position] = current
            result = await self.runner._end_park(node, current, recorded, self.hooks)
            # Written at once: a callback's body is taken from Redis only once.
            return _Ended(current, result, lost=not await self._checkpoint(current))
        if recorded is not None:
            # Its effect happened (or its wait ended): never repeat it.
            self.records[position] = recorded.record
            failed = recorded.record.status == FAILED
            items = [item.record for item in self.resume.items.get(position, {}).values()]
            result = StepResult(recorded.output, failure=recorded.record.error if failed else None)
            return _Ended(recorded.record, result, sorted(items, key=lambda i: i.index))
        skipped = await self.runner._skip_reason(node, self.context, record)
        if skipped is not None:
            record.status, record.error = SKIPPED, skipped
            return _Ended(record, None)
        if record.status == FAILED:
            return _Ended(record, StepResult(None, failure=record.error))
        if node.for_each is not None:
            pending: list[ItemRecord] = []

            async def checkpoint_item(item: ItemRecord) -> bool:
                # Group commit: items that end while a write is in flight go in the next one,
                # and each returns once its own row is written.
                pending.append(item)
                async with self.writes:
                    if any(waiting is item for waiting in pending):
                        batch = pending[:]
                        pending.clear()
                        written = await self.hooks.checkpoint_items(record, batch)
                        self.items_owned = self.items_owned and written
                    return self.items_owned

            each = await self.graph.foreach.run(
                self.run,
                node,
                spec,
                record,
                self.context,
                self.deadline,
                self.resume.items.get(position, {}),
                checkpoint_item,
                self.hooks.cancelled,
            )
            ended = _Ended(record, each.result, each.items, each.lost)
        else:
            result = await self.runner.steps.step(
                self.run, node, spec, record, self.context, self.deadline
            )
            ended = _Ended(record, result)
            if result.park is not None:
                return ended
        if spec is not None and spec.has_effects and not ended.lost:
            ended.lost = not await self._checkpoint(record)
        return ended

    async def _checkpoint(self, record: StepRecord) -> bool:
        async with self.writes:
            return await self.hooks.checkpoint([record])

    # --- outcomes ----------------------------------------------------------------------------

    def _ended(self, position: int, ended: _Ended) -> None:
        node = self.nodes[position]
        self.records[position] = ended.record
        if ended.items:
            self.items[position] = ended.items
        result = ended.result
        if ended.lost:
            # Cancelled or taken over: nothing more is ours to write or start.
            self.park = None
            self.status, self.error, self.note = CANCELLED, "cancelled", "skipped: run cancelled"
            self.stopped = True
        if result is None:
            self.context["steps"][node.id] = None
            self.ran[position] = False
            return
        if result.park is not None:
            self._parked(position, ended.record, result)
            return
        self.context["steps"][node.id] = result.output
        self.ran[position] = True
        if result.halted is not None:
            self._stop(SUCCEEDED, None, f"skipped: {result.halted} (run ended by node '{node.id}')")
        elif result.failure is not None and not node.continue_on_fail:
            error = f"node '{node.id}' ({node.type}) failed: {result.failure}"
            if self.park is not None:
                # A failure ends the run: the park it was about to take is dropped.
                self._drop_park()
            self._stop(FAILED, error, f"skipped: node '{node.id}' failed")

    def _parked(self, position: int, record: StepRecord, result: StepResult) -> None:
        assert result.park is not None
        if self.stopped:
            # Parking one node already, or the run is ending: this one starts over later.
            self.records[position] = None
            return
        self.park = self.runner._park(position, record, result.park, self.context)
        self.status, self.stopped = WAITING, True

    def _drop_park(self) -> None:
        assert self.park is not None
        self.records[self.park.position] = None
        self.park = None
        self.status, self.stopped = SUCCEEDED, False

    def _stop(self, status: str, error: str | None, note: str) -> None:
        if self.stopped:
            return
        self.status, self.error, self.note = status, error, note
        self.stopped = True

    def _interrupted(self) -> None:
        self.park = None
        names = ", ".join(f"'{self.nodes[p].id}'" for p in sorted(self.running.values()))
        self.status = FAILED
        self.error = "run exceeded its deadline" + (f" while {names} ran" if names else "")
        self.note = "skipped: run deadline exceeded"
        self.stopped = True
        for position in self.running.values():
            record = self.records[position]
            if record is None:
                continue
            elapsed = time.perf_counter() - self.clocks.get(position, time.perf_counter())
            record.status = FAILED
            record.error = "interrupted: the run's deadline was exceeded"
            record.duration_ms = int(elapsed * 1000)
            observe(record.type, FAILED, elapsed)

    def _outcome(self) -> RunOutcome:
        if self.park is None:
            note = self.note or "skipped: not reached"
            for position, node in enumerate(self.nodes):
                record = self.records[position]
                if record is None or record.status in ("running", WAITING):
                    self.records[position] = StepRecord(
                        position, node.id, node.type, SKIPPED, error=note
                    )
        steps = [record for record in self.records if record is not None]
        item_rows = [
            item.as_row(position)
            for position, items in sorted(self.items.items())
            for item in items
        ]
        return RunOutcome(self.status, self.error, steps, self.park, item_rows=item_rows)
