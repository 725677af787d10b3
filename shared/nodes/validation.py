"""Save-time validation of a workflow's `nodes`: a bad definition is a 422, never a failed run.

Every problem is reported (not just the first), each naming the node and the field, in a shape
the workflows service turns into FastAPI-style 422 details with `issues_to_detail`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.nodes.contract import NODE_ID_PATTERN, NodeDefinition
from shared.nodes.graph_validation import check_graph
from shared.nodes.loader import NodeRegistry
from shared.nodes.templating import check_syntax, is_template

__all__ = ["MAX_NODES", "Issue", "issues_to_detail", "validate_nodes"]

MAX_NODES = 100

_NODE_ID = re.compile(NODE_ID_PATTERN)
_INDEX_LABEL = re.compile(r"^nodes\[(\d+)\]$")


@dataclass(frozen=True)
class Issue:
    """One problem in a definition.

    `node` is the node's id, `nodes[<index>]` when the id itself is missing or invalid, or None
    for the list as a whole; `field` is a dotted path inside the node (`params.url`, `type`),
    empty for the node itself.
    """

    node: str | None
    field: str
    message: str


def _dotted(loc: Sequence[str | int]) -> str:
    return ".".join(str(part) for part in loc)


def _reaches_template(data: Any, loc: Sequence[str | int]) -> bool:
    # Walk the error's location through the input: if it lands on (or passes through) a
    # template string, the real value only exists at run time, so the type error is moot.
    # Locations may end in union tags that are not in the input; the walk stops there.
    current = data
    for part in loc:
        if is_template(current):
            return True
        in_dict = isinstance(current, dict) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if not (in_dict or in_list):
            break
        current = current[part]
    return is_template(current)


def _check_definition(label: str, item: dict[str, Any]) -> list[Issue]:
    try:
        NodeDefinition.model_validate(item)
    except ValidationError as exc:
        return [
            Issue(label, _dotted(error["loc"]), error["msg"])
            for error in exc.errors(include_url=False)
        ]
    return []


def _check_params(label: str, item: dict[str, Any], registry: NodeRegistry) -> list[Issue]:
    type_ = item.get("type")
    params = item.get("params", {})
    if not isinstance(type_, str) or not type_ or not isinstance(params, dict):
        return []
    issues = [
        Issue(label, f"params.{path}" if path else "params", message)
        for path, message in check_syntax(params)
    ]
    spec = registry.get(type_)
    if spec is None:
        known = ", ".join(registry.types()) or "none"
        issues.append(Issue(label, "type", f"unknown node type {type_!r} (known types: {known})"))
        return issues
    try:
        spec.params_model.model_validate(params)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = error["loc"]
            if _reaches_template(params, loc):
                continue
            field = f"params.{_dotted(loc)}" if loc else "params"
            issues.append(Issue(label, field, error["msg"]))
    return issues


def validate_nodes(nodes: Any, registry: NodeRegistry) -> list[Issue]:
    """Return every problem in a workflow's `nodes` list; `[]` means it is valid.

    Checks the list itself, each entry's shape and settings, duplicate ids, unknown types,
    template syntax anywhere in params, and params against the node's params model (a field
    holding a template is exempt from type checks: its type is only known at run time); then
    the graph: `after` ids, cycles, `join`, `for_each` and `concurrency`.
    """
    if not isinstance(nodes, list):
        return [Issue(None, "", "nodes must be a list")]
    if len(nodes) > MAX_NODES:
        return [Issue(None, "", f"a workflow has at most {MAX_NODES} nodes, got {len(nodes)}")]
    issues: list[Issue] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(nodes):
        if not isinstance(item, dict):
            issues.append(Issue(f"nodes[{index}]", "", "each node must be an object"))
            continue
        node_id = item.get("id")
        valid_id = isinstance(node_id, str) and len(node_id) <= 64 and _NODE_ID.match(node_id)
        label = node_id if valid_id and isinstance(node_id, str) else f"nodes[{index}]"
        issues.extend(_check_definition(label, item))
        if valid_id and isinstance(node_id, str):
            if node_id in seen:
                issues.append(
                    Issue(
                        node_id,
                        "id",
                        f"duplicate node id {node_id!r}: nodes[{seen[node_id]}] and "
                        f"nodes[{index}] both use it",
                    )
                )
            else:
                seen[node_id] = index
        issues.extend(_check_condition(label, item))
        issues.extend(_check_params(label, item, registry))
    if not issues:
        # Edges are checked on a list whose nodes are sound (ids, types, settings).
        issues.extend(Issue(node, field, message) for node, field, message in check_graph(nodes))
    return issues


def _check_condition(label: str, item: dict[str, Any]) -> list[Issue]:
    condition = item.get("if")
    if not isinstance(condition, str):
        return []  # absent, or a type error _check_definition reports
    if not is_template(condition):
        return [Issue(label, "if", 'must be a template such as "{{ trigger.body.amount > 100 }}"')]
    return [Issue(label, "if", message) for _path, message in check_syntax({"if": condition})]


def issues_to_detail(issues: Sequence[Issue]) -> list[dict[str, Any]]:
    """Render issues as FastAPI 422 `detail` entries.

    `loc` is `["body", "nodes", <node id or index>, *field parts]`, with numeric parts as ints.
    """
    detail: list[dict[str, Any]] = []
    for issue in issues:
        loc: list[str | int] = ["body", "nodes"]
        if issue.node is not None:
            index = _INDEX_LABEL.match(issue.node)
            loc.append(int(index.group(1)) if index else issue.node)
        if issue.field:
            loc.extend(int(part) if part.isdigit() else part for part in issue.field.split("."))
        detail.append({"loc": loc, "msg": issue.message, "type": "value_error"})
    return detail
