"""Discover node plugins: every module of the `nodes` package plus an entry-point group.

A broken plugin must never take a worker or the API down, so every failure (import error, no
`NODE`, invalid spec, duplicate type) is logged with its traceback, recorded in
`NodeRegistry.errors` and skipped. Build the registry once per process (at boot) and keep it:
discovery imports modules and builds JSON Schemas, which is not per-job work.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import logging
import os
import re
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from shared.nodes.contract import NodeSettings, NodeSpec

__all__ = ["NodeRegistry", "load_registry"]

logger = logging.getLogger(__name__)

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class InvalidNodeSpec(Exception):
    """A plugin exposed something that is not a usable NodeSpec."""


def validate_spec(spec: Any) -> NodeSpec[Any]:
    """Return `spec` if it is a usable NodeSpec, else raise InvalidNodeSpec saying why."""
    if not isinstance(spec, NodeSpec):
        raise InvalidNodeSpec(f"expected a NodeSpec, got {type(spec).__name__}")
    if not isinstance(spec.type, str) or not _TYPE_NAME.match(spec.type):
        raise InvalidNodeSpec(
            f"type {spec.type!r} must be 1-64 lower-case letters, digits, '_', '.' or '-'"
        )
    if not isinstance(spec.version, int) or spec.version < 1:
        raise InvalidNodeSpec(f"{spec.type}: version must be an integer >= 1")
    if not (isinstance(spec.params_model, type) and issubclass(spec.params_model, BaseModel)):
        raise InvalidNodeSpec(f"{spec.type}: params_model must be a pydantic model class")
    if not callable(spec.run):
        raise InvalidNodeSpec(f"{spec.type}: run must be callable")
    # Building the schema now means `GET /nodes` can never fail on a plugin later.
    spec.params_schema()
    return spec


class NodeRegistry:
    """The node types a process knows, by type name, plus what failed to load."""

    def __init__(self, specs: Iterable[NodeSpec[Any]] = ()) -> None:
        self._specs: dict[str, NodeSpec[Any]] = {}
        self.errors: dict[str, str] = {}
        self._catalogue: list[dict[str, Any]] | None = None
        for spec in specs:
            self.add(spec, source=f"<{spec.type}>")

    def add(self, spec: NodeSpec[Any], *, source: str) -> bool:
        """Register `spec` loaded from `source`; a duplicate type is recorded as an error."""
        existing = self._specs.get(spec.type)
        if existing is not None:
            self.record_error(
                source, f"duplicate node type {spec.type!r}: already provided, this one is ignored"
            )
            return False
        self._specs[spec.type] = spec
        self._catalogue = None
        return True

    def record_error(self, source: str, message: str, *, exc: BaseException | None = None) -> None:
        """Log a plugin that could not be loaded (with its traceback) and remember why."""
        if exc is not None:
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            message = f"{message}: {detail}"
            logger.error("node plugin %s skipped: %s", source, message, exc_info=exc)
        else:
            logger.error("node plugin %s skipped: %s", source, message)
        self.errors[source] = message

    def get(self, type_: str) -> NodeSpec[Any] | None:
        """Return the spec of node type `type_`, or None when it is unknown."""
        return self._specs.get(type_)

    def types(self) -> list[str]:
        """Return the known node type names, sorted."""
        return sorted(self._specs)

    def catalogue(self) -> list[dict[str, Any]]:
        """Return `{type, version, description, params_schema, settings_schema}` per type.

        Sorted by type. Schemas are built once; each call returns a copy callers may mutate.
        """
        if self._catalogue is None:
            settings_schema = NodeSettings.model_json_schema()
            self._catalogue = [
                {
                    "type": spec.type,
                    "version": spec.version,
                    "description": spec.description,
                    "params_schema": spec.params_schema(),
                    "settings_schema": settings_schema,
                }
                for spec in (self._specs[name] for name in self.types())
            ]
        return copy.deepcopy(self._catalogue)

    def __contains__(self, type_: object) -> bool:
        return type_ in self._specs

    def __len__(self) -> int:
        return len(self._specs)


def _module_files(package: ModuleType) -> list[str]:
    names: set[str] = set()
    for folder in getattr(package, "__path__", []):
        for path in Path(folder).glob("*.py"):
            if not path.name.startswith("_"):
                names.add(path.stem)
    return sorted(names)


def _load_package(registry: NodeRegistry, nodes_package: str) -> None:
    try:
        package = importlib.import_module(nodes_package)
    except Exception as exc:
        registry.record_error(nodes_package, "cannot import the node package", exc=exc)
        return
    for name in _module_files(package):
        source = f"{nodes_package}.{name}"
        try:
            module = importlib.import_module(source)
        except (Exception, SystemExit) as exc:
            # SystemExit too: a plugin calling sys.exit() at import must not stop the worker.
            registry.record_error(source, "import failed", exc=exc)
            continue
        if not hasattr(module, "NODE"):
            registry.record_error(source, "module has no NODE = NodeSpec(...)")
            continue
        try:
            spec = validate_spec(module.NODE)
        except Exception as exc:
            registry.record_error(source, "invalid NODE", exc=exc)
            continue
        registry.add(spec, source=source)


def _load_entry_points(registry: NodeRegistry, group: str) -> None:
    try:
        entry_points = importlib.metadata.entry_points(group=group)
    except Exception as exc:
        registry.record_error(f"entry points {group}", "cannot list entry points", exc=exc)
        return
    for entry_point in sorted(entry_points, key=lambda ep: ep.name):
        source = f"entry point {group}:{entry_point.name} ({entry_point.value})"
        try:
            obj = entry_point.load()
        except (Exception, SystemExit) as exc:
            registry.record_error(source, "import failed", exc=exc)
            continue
        # A third-party package may point at its spec or at a module that defines NODE.
        if isinstance(obj, ModuleType):
            obj = getattr(obj, "NODE", obj)
        try:
            spec = validate_spec(obj)
        except Exception as exc:
            registry.record_error(source, "invalid node spec", exc=exc)
            continue
        registry.add(spec, source=source)


# Extra plugin packages (importable names, comma-separated), loaded like `nodes/`: for plugins
# mounted into an image without packaging them as entry points.
EXTRA_PACKAGES_ENV = "AUTOMATEOS_NODE_PACKAGES"


def load_registry(
    *, nodes_package: str = "nodes", entry_point_group: str = "automateos.nodes"
) -> NodeRegistry:
    """Discover every node type and return the registry; never raises on a bad plugin.

    Modules of `nodes_package` (files `*.py` not starting with `_`, each exposing
    `NODE: NodeSpec`) load first, in name order, then those of the packages named in
    `AUTOMATEOS_NODE_PACKAGES`, then the entry points of `entry_point_group`; on a duplicate
    type the first one wins.
    """
    registry = NodeRegistry()
    _load_package(registry, nodes_package)
    for extra in os.environ.get(EXTRA_PACKAGES_ENV, "").split(","):
        if extra.strip():
            _load_package(registry, extra.strip())
    _load_entry_points(registry, entry_point_group)
    if registry.errors:
        logger.warning(
            "loaded %d node types; %d plugins skipped: %s",
            len(registry),
            len(registry.errors),
            ", ".join(sorted(registry.errors)),
        )
    else:
        logger.info("loaded %d node types: %s", len(registry), ", ".join(registry.types()))
    return registry
