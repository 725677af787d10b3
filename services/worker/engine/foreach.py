"""A for-each step: the node once per item of a list, up to `concurrency` items at once.

Each item renders the node's params with `item` and `item_index` in its context and is
executed like any step (timeout, retries, threads). An effectful node's item is checkpointed
on its own as soon as it ends, so after a crash only items in flight at that moment can run
again. Pure items are recomputed, like pure steps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from services.worker.engine.items import ItemRecord, RecordedItem
from services.worker.engine.records import encode_json, record_payload, redact
from services.worker.engine.steps import (
    FAILED,
    SKIPPED,
    SUCCEEDED,
    RunIdentity,
    StepExecutor,
    StepRecord,
    StepResult,
)
from shared.nodes import NodeDefinition, NodeError, NodeSpec

MAX_ITEMS = 10_000
DEFAULT_CONCURRENCY = 4

# Writes an effectful item's record; False when the run is no longer this delivery's.
ItemCheckpoint = Callable[[ItemRecord], Awaitable[bool]]


@dataclass
class ForEachOutcome:
    """The step's result, every item that started (in index order), and whether the run was
    lost meanwhile (cancelled, or a checkpoint refused: taken over)."""

    result: StepResult
    items: list[ItemRecord] = field(default_factory=list)
    lost: bool = False


class ForEach:
    """Runs for-each steps; shared by every run of the process (no per-run state)."""

    def __init__(self, steps: StepExecutor) -> None:
        self.steps = steps

    async def run(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any] | None,
        record: StepRecord,
        context: Mapping[str, Any],
        deadline: float,
        recorded: Mapping[int, RecordedItem],
        checkpoint: ItemCheckpoint,
        cancelled: Callable[[], bool],
    ) -> ForEachOutcome:
        """Run the node for each item into `record` (the step) and the item records.

        `cancelled` is asked before each item: a cancelled run starts no more items.
        """
        started = time.perf_counter()
        listed = await self._items(node, context)
        if isinstance(listed, str):
            record.status, record.error = FAILED, listed
            self.steps.record_output(record, spec, {"error": listed})
            return ForEachOutcome(StepResult({"error": listed}, failure=listed))
        concurrency = node.concurrency or DEFAULT_CONCURRENCY
        record.input = orjson.Fragment(
            orjson.dumps({"for_each": len(listed), "concurrency": concurrency})
        )
        batch = _Batch(len(listed), node.continue_on_fail)
        effectful = spec is not None and spec.has_effects

        async def one(index: int) -> None:
            reused = recorded.get(index)
            if reused is not None:
                batch.end(index, reused.record, reused.output)
                return
            item, output = await self._item(run, node, spec, context, deadline, listed, index)
            batch.end(index, item, output)
            if effectful and not await checkpoint(item):
                batch.lost = True

        async def lane() -> None:
            while (index := batch.take()) is not None:
                if cancelled():
                    batch.lost = True
                    return
                await one(index)

        if spec is not None and spec.runs_inline:
            # Inline items never yield: lanes would only add task switches.
            await lane()
        else:
            async with asyncio.TaskGroup() as lanes:
                for _ in range(min(concurrency, len(listed))):
                    lanes.create_task(lane())
        result = batch.result(node)
        if batch.lost:
            done = sum(item is not None for item in batch.records)
            stopped = f"stopped after {done} of {len(listed)} items: the run was cancelled"
            result = StepResult(result.output, failure=stopped)
        record.status = FAILED if result.failure is not None else SUCCEEDED
        record.error = result.failure
        record.attempt = 1
        self.steps.record_output(record, spec, result.output)
        record.duration_ms = int((time.perf_counter() - started) * 1000)
        items = [item for item in batch.records if item is not None]
        return ForEachOutcome(result, items, batch.lost)

    async def _items(self, node: NodeDefinition, context: Mapping[str, Any]) -> list[Any] | str:
        """The rendered list, or why the step fails."""
        try:
            value = await self.steps.renderer.render(node.for_each or "", context)
        except NodeError as exc:
            return f"for_each failed: {exc.message}"
        if not isinstance(value, list | tuple):
            return f"for_each must give a list, got {type(value).__name__}"
        if len(value) > MAX_ITEMS:
            return (
                f"for_each gave {len(value)} items; a step takes at most {MAX_ITEMS:,} "
                "(split the list, or page through it in the trigger)"
            )
        return list(value)

    async def _item(
        self,
        run: RunIdentity,
        node: NodeDefinition,
        spec: NodeSpec[Any] | None,
        context: Mapping[str, Any],
        deadline: float,
        listed: list[Any],
        index: int,
    ) -> tuple[ItemRecord, Any]:
        scratch = StepRecord(0, node.id, node.type, "running")
        item = ItemRecord(index, "running", started_at=datetime.now(UTC))
        scope = {**context, "item": listed[index], "item_index": index}
        result = await self.steps.step(run, node, spec, scratch, scope, deadline)
        output = result.output
        if result.park is not None:
            message = "a node cannot park inside for_each (it would hold every other item)"
            scratch.status, scratch.error, output = FAILED, message, {"error": message}
            scratch.output = record_payload(output, self.steps.payload_max_bytes)
        elif result.halted is not None:
            # A `filter` per item drops that item rather than ending the run.
            scratch.status, scratch.error, output = SKIPPED, f"skipped: {result.halted}", None
        item.status, item.error, item.output = scratch.status, scratch.error, scratch.output
        item.duration_ms = scratch.duration_ms
        if spec is not None and spec.has_effects:
            item.resume_output = orjson.Fragment(encode_json(output))
        return item, output


class _Batch:
    """The items' progress: which index goes next, what ended, the first failure."""

    def __init__(self, count: int, continue_on_fail: bool) -> None:
        self.count = count
        self.continue_on_fail = continue_on_fail
        self.next = 0
        self.outputs: list[Any] = [None] * count
        self.records: list[ItemRecord | None] = [None] * count
        self.failed: list[int] = []
        self.lost = False

    def take(self) -> int | None:
        stop = self.lost or (self.failed and not self.continue_on_fail)
        if stop or self.next >= self.count:
            return None
        self.next += 1
        return self.next - 1

    def end(self, index: int, record: ItemRecord, output: Any) -> None:
        self.records[index] = record
        self.outputs[index] = output
        if record.status == FAILED:
            self.failed.append(index)

    def result(self, node: NodeDefinition) -> StepResult:
        if not self.failed:
            return StepResult(self.outputs)
        first = min(self.failed)
        cause = self.records[first]
        message = f"item {first} failed: {cause.error if cause else 'unknown'}"
        if len(self.failed) > 1:
            message = f"{len(self.failed)} items failed; first: {message}"
        if self.continue_on_fail:
            return StepResult(self.outputs, failure=message)
        return StepResult(redact({"error": message}), failure=message)
