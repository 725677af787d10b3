"""Save-time checks of the graph settings: `after`, `join`, `for_each`, `concurrency`.

A definition the worker could not schedule (an unknown id, a cycle) is a 422 naming the nodes.
"""

from __future__ import annotations

from typing import Any

from shared.nodes.graph import find_cycle, predecessors
from shared.nodes.templating import check_syntax, is_template

__all__ = ["PARKING_TYPES", "GraphIssue", "check_graph"]

# (node id, field, message): validation.py makes them `Issue`s (it imports this module).
GraphIssue = tuple[str, str, str]

# Core nodes that park the run (hold no worker slot while they wait). A park ends a delivery,
# and for-each items share their step's delivery, so these cannot run per item.
PARKING_TYPES = frozenset({"delay", "wait_for_callback"})


def _node_checks(label: str, item: dict[str, Any]) -> list[GraphIssue]:
    issues: list[GraphIssue] = []
    if item.get("join", "all") == "any" and not item.get("after"):
        issues.append((label, "join", "'any' applies to a node with a non-empty 'after'"))
    for_each = item.get("for_each")
    if isinstance(for_each, str):
        if not is_template(for_each):
            issues.append(
                (label, "for_each", 'must be a template such as "{{ steps.fetch.items }}"')
            )
        else:
            issues.extend(
                (label, "for_each", message)
                for _path, message in check_syntax({"for_each": for_each})
            )
        if item.get("type") in PARKING_TYPES:
            issues.append(
                (
                    label,
                    "for_each",
                    f"a {item.get('type')} node cannot run for each item (it parks the whole "
                    "run); put it before or after the for-each node",
                )
            )
    elif item.get("concurrency") is not None:
        issues.append((label, "concurrency", "applies to a node with 'for_each'"))
    return issues


def check_graph(nodes: list[Any]) -> list[GraphIssue]:
    """Problems in the graph settings of an otherwise well-formed node list.

    Nodes whose id is unusable are left out of the edge checks (their own issue says why).
    """
    issues: list[GraphIssue] = []
    ids: list[str] = []
    afters: list[list[str] | None] = []
    for item in nodes:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            return issues  # reported by the shape checks; edges would be guesswork
        ids.append(item["id"])
        after = item.get("after")
        afters.append(after if isinstance(after, list) else None)
        issues.extend(_node_checks(item["id"], item))
    known = set(ids)
    for node_id, after in zip(ids, afters, strict=True):
        for index, other in enumerate(after or ()):
            if isinstance(other, str) and other not in known:
                issues.append((node_id, f"after.{index}", f"unknown node id {other!r} in 'after'"))
    edges = {
        node_id: [p for p in preds if isinstance(p, str) and p in known]
        for node_id, preds in zip(ids, predecessors(ids, afters), strict=True)
    }
    cycle = find_cycle(edges)
    if cycle is not None:
        issues.append(
            (
                cycle[0],
                "after",
                "the nodes wait for each other in a cycle: " + " -> ".join(reversed(cycle)),
            )
        )
    return issues
