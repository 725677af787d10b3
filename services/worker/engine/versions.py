"""Workflow versions are immutable, so each process parses one once and keeps it (bounded LRU)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from services.worker.engine.graph import GraphPlan, build_plan
from shared.nodes import NodeDefinition


@dataclass(frozen=True)
class LoadedVersion:
    """The parsed nodes of a version, or why it cannot run (`error`).

    `plan` is set for a graph workflow (`after`, `for_each`), None for a plain list.
    """

    nodes: tuple[NodeDefinition, ...] = ()
    error: str | None = None
    plan: GraphPlan | None = None


def parse_nodes(raw: list[dict[str, Any]]) -> LoadedVersion:
    """Parse a stored node list; the definition was validated on save, so errors are rare."""
    nodes = []
    for index, item in enumerate(raw):
        try:
            nodes.append(NodeDefinition.model_validate(item))
        except ValidationError as exc:
            label = item.get("id") if isinstance(item, dict) else None
            first = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            return LoadedVersion(
                error=f"node '{label or f'nodes[{index}]'}' has an invalid definition: "
                f"{where}: {first['msg']}"
            )
    plan = build_plan(nodes)
    if isinstance(plan, str):
        return LoadedVersion(error=plan)
    return LoadedVersion(tuple(nodes), plan=plan)


class VersionCache:
    """A least-recently-used map of (workflow_id, version) to its parsed nodes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, int], LoadedVersion] = OrderedDict()

    def get(self, workflow_id: str, version: int) -> LoadedVersion | None:
        """The cached version, marked as recently used, or None."""
        key = (workflow_id, version)
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, workflow_id: str, version: int, loaded: LoadedVersion) -> None:
        """Remember a version, evicting the least recently used beyond `size`."""
        self._items[(workflow_id, version)] = loaded
        self._items.move_to_end((workflow_id, version))
        while len(self._items) > self.size:
            self._items.popitem(last=False)
