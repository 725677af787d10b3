"""Workflow versions are immutable, so each process parses one once and keeps it (bounded LRU)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.nodes import NodeDefinition


@dataclass(frozen=True)
class LoadedVersion:
    """The parsed nodes of a version, or why it cannot run (`error`)."""

    nodes: tuple[NodeDefinition, ...] = ()
    error: str | None = None


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
    return LoadedVersion(tuple(nodes))


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
