"""Workflows a definition names: `call_workflow`'s `workflow` and the top-level `on_error`.

Each must be one of the owner's own workflows, by id or by a name only one of them has; anyone
else's is as unknown as a missing one (a 422 that does not tell them apart). A templated
`workflow` is only known at run time: the worker then applies the same rule (a step error).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.workflows.repository import WorkflowRepository
from shared.nodes import is_template

CALL_WORKFLOW = "call_workflow"


def canonical(reference: str) -> str:
    """An id in its canonical form (the worker compares text), any other name as given."""
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return reference.strip()


async def _problem(session: AsyncSession, owner_id: uuid.UUID, reference: str) -> str | None:
    found = await WorkflowRepository(session).referenced(owner_id, canonical(reference))
    if not found:
        return f"no workflow {reference!r} of yours"
    if len(found) > 1 and str(found[0].id) != canonical(reference):
        return f"several of your workflows are named {reference!r}; name it by id"
    return None


async def link_issues(
    session: AsyncSession, owner_id: uuid.UUID, nodes: list[dict[str, Any]], on_error: str | None
) -> list[dict[str, Any]]:
    """422 details for every named workflow that is not exactly one of the owner's."""
    issues: list[dict[str, Any]] = []
    for node in nodes:
        params = node.get("params")
        if node.get("type") != CALL_WORKFLOW or not isinstance(params, dict):
            continue
        reference = params.get("workflow")
        if not isinstance(reference, str) or is_template(reference):
            continue
        problem = await _problem(session, owner_id, reference)
        if problem is not None:
            issues.append(
                {
                    "loc": ["body", "nodes", node.get("id"), "params", "workflow"],
                    "msg": problem,
                    "type": "value_error",
                }
            )
    if on_error is not None:
        problem = await _problem(session, owner_id, on_error)
        if problem is not None:
            issues.append({"loc": ["body", "on_error"], "msg": problem, "type": "value_error"})
    return issues
