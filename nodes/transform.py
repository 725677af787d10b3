"""`transform`: build an object from templates (the engine renders them before `run`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.nodes import NodeContext, NodeSpec


class TransformParams(BaseModel):
    """Params of the `transform` node: the object to output, each value usually a template."""

    model_config = ConfigDict(extra="forbid")

    values: dict[str, Any]


def run(ctx: NodeContext, params: TransformParams) -> dict[str, Any]:
    """Return the rendered `values` object as the node's output."""
    return dict(params.values)


NODE = NodeSpec(
    type="transform",
    version=1,
    description="Build an object from templates, e.g. to reshape a payload for later steps.",
    params_model=TransformParams,
    run=run,
    effects=False,
    blocking=False,
)
