"""The plan of a graph workflow: each node's predecessors, computed once per version.

A workflow uses the graph scheduler (engine/scheduler.py) only when a node has `after` or
`for_each`; a plain list keeps the sequential runner and pays nothing for the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.nodes import NodeDefinition
from shared.nodes.graph import find_cycle, predecessors, uses_graph


@dataclass(frozen=True)
class GraphPlan:
    """Per position: predecessors, whether they are `after` edges, successors, join mode.

    Skips propagate along `after` edges only: in list order a skipped node does not skip the
    next one (so `switch` + `if` routing keeps working).
    """

    preds: tuple[tuple[int, ...], ...]
    explicit: tuple[bool, ...]
    join_any: tuple[bool, ...]
    succs: tuple[tuple[int, ...], ...]
    # Whether any node is a for-each (the engine then loads recorded items on a redelivery).
    for_each: bool


def build_plan(nodes: Sequence[NodeDefinition]) -> GraphPlan | str | None:
    """The plan, None for a plain list, or why it cannot run (saved before validation had it)."""
    if not uses_graph([n.after for n in nodes], [n.for_each for n in nodes]):
        return None
    ids = [node.id for node in nodes]
    index = {node_id: position for position, node_id in enumerate(ids)}
    edges = predecessors(ids, [node.after for node in nodes])
    for node, listed in zip(nodes, edges, strict=True):
        unknown = [other for other in listed if other not in index]
        if unknown:
            return f"node '{node.id}' runs after unknown nodes {unknown}"
    cycle = find_cycle(dict(zip(ids, edges, strict=True)))
    if cycle is not None:
        return "nodes wait for each other in a cycle: " + " -> ".join(reversed(cycle))
    preds = tuple(tuple(index[other] for other in listed) for listed in edges)
    succs: list[list[int]] = [[] for _ in nodes]
    for position, before in enumerate(preds):
        for other in before:
            succs[other].append(position)
    return GraphPlan(
        preds=preds,
        explicit=tuple(node.after is not None for node in nodes),
        join_any=tuple(node.join == "any" and bool(node.after) for node in nodes),
        succs=tuple(tuple(s) for s in succs),
        for_each=any(node.for_each is not None for node in nodes),
    )
