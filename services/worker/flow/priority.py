"""Which priority queue a worker asks first, tick by tick (docs/flow-control.md, "priority").

Runs of a `"priority": "high"` workflow go to `<queue>:high`, `"low"` to `<queue>:low`, the rest
to `<queue>` (shared/flow.py). A worker asks its queues in the order `dequeue_order(tick)`
gives, and takes from the first that has a job (a blocking pop over all three), so queued high
runs start before normal ones and normal before low.

Anti-starvation rule: of every 16 dequeues, 12 ask high first, 3 ask normal first (ticks 3, 7,
11) and 1 asks low first (tick 15). While all three queues are full, high gets 12 of 16 starts,
normal 3, low 1; a non-empty queue is never passed over more than 15 dequeues in a row, so a
low run waits behind at most 15 others however busy the higher queues are.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.flow import Priority, queue_for

CYCLE = 16
_HIGH_FIRST: tuple[Priority, ...] = ("high", "normal", "low")
_NORMAL_FIRST: tuple[Priority, ...] = ("normal", "high", "low")
_LOW_FIRST: tuple[Priority, ...] = ("low", "high", "normal")


def priority_order(tick: int) -> tuple[Priority, ...]:
    """The priorities in the order the dequeue number `tick` asks them."""
    position = tick % CYCLE
    if position == CYCLE - 1:
        return _LOW_FIRST
    if position % 4 == 3:
        return _NORMAL_FIRST
    return _HIGH_FIRST


def dequeue_order(base: str) -> Callable[[int], list[str]]:
    """The callable a consumer evaluates each tick: tick -> the queue names to ask, in order."""
    orders = {
        order: [queue_for(base, priority) for priority in order]
        for order in (_HIGH_FIRST, _NORMAL_FIRST, _LOW_FIRST)
    }

    def order(tick: int) -> list[str]:
        return orders[priority_order(tick)]

    return order
