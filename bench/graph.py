"""`make bench-worker` rows for the graph: a for-each of 1,000 items, and parallel branches.

Each is the latency of one run, the median of a few, on the bench's own worker: for-each
against the issue's target (< 2 s), two parallel 200 ms calls against the same calls in list
order (the baseline, ~0.5x expected).
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable
from typing import Any

# bench.worker's Bench.burst on one queue: (nodes, count, body) -> seconds until all ended.
Burst = Callable[[list[dict[str, Any]], int, dict[str, Any]], Awaitable[float]]
# (name, value, unit, baseline, target): a row bench.worker prints as a Figure.
Row = tuple[str, float, str, float | None, str]

REPEATS = 5
ITEMS = 1000


def for_each_nodes() -> list[dict[str, Any]]:
    return [
        {
            "id": "each",
            "type": "transform",
            "for_each": "{{ range(trigger.body.items) | list }}",
            "params": {"values": {"item": "{{ item }}", "at": "{{ item_index }}"}},
        },
        {
            "id": "count",
            "type": "transform",
            "params": {"values": {"n": "{{ steps.each | length }}"}},
        },
    ]


def branch_nodes(slow_url: str, *, parallel: bool) -> list[dict[str, Any]]:
    after: dict[str, Any] = {"after": []} if parallel else {}
    return [
        {"id": "crm", "type": "http_request", "params": {"url": slow_url}, **after},
        {"id": "billing", "type": "http_request", "params": {"url": slow_url}, **after},
        {
            "id": "merge",
            "type": "transform",
            **({"after": ["crm", "billing"]} if parallel else {}),
            "params": {"values": {"ok": "{{ [steps.crm.status, steps.billing.status] }}"}},
        },
    ]


async def _latency(burst: Burst, nodes: list[dict[str, Any]]) -> float:
    times = [await burst(nodes, 1, {"items": ITEMS}) for _ in range(REPEATS)]
    return statistics.median(times)


async def rows(burst: Burst, slow_url: str) -> list[Row]:
    """The two rows, measured through `burst` on a worker already started."""
    each = await _latency(burst, for_each_nodes())
    parallel = await _latency(burst, branch_nodes(slow_url, parallel=True))
    listed = await _latency(burst, branch_nodes(slow_url, parallel=False))
    return [
        (f"for-each, {ITEMS:,} transform items, one run", each, "s", None, "< 2 s"),
        ("2 parallel 200 ms calls (base: list order)", parallel, "s", listed, "~0.5x"),
    ]
