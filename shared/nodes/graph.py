"""The edges of a workflow's nodes: who starts after whom (`after`, or the node listed before).

Shared by save-time validation (unknown ids and cycles are a 422) and the worker's plan, so
both read a definition the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["find_cycle", "predecessors", "uses_graph"]


def uses_graph(after: Sequence[list[str] | None], for_each: Sequence[str | None]) -> bool:
    """Whether any node needs the graph scheduler (an `after` or a `for_each`)."""
    return any(edge is not None for edge in after) or any(f is not None for f in for_each)


def predecessors(ids: Sequence[str], after: Sequence[list[str] | None]) -> list[list[str]]:
    """Each node's predecessors: its `after`, else the node listed before it (none first)."""
    edges: list[list[str]] = []
    for index, listed in enumerate(after):
        if listed is not None:
            edges.append(list(dict.fromkeys(listed)))
        else:
            edges.append([ids[index - 1]] if index > 0 else [])
    return edges


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle among known ids, as the ids along it (first repeated at the end), or None.

    Iterative depth-first search: a definition has at most 100 nodes, but no recursion limit
    should depend on that.
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in edges:
        if state.get(root):
            continue
        path: list[str] = [root]
        stack = [iter(edges.get(root, ()))]
        state[root] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if nxt not in edges:
                continue  # unknown ids are reported on their own
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return None
