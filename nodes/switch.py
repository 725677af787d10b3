"""`switch`: pick a value by the first case whose condition holds, for later `if`s to read."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.nodes import NodeContext, NodeSpec

MAX_CASES = 50


class SwitchCase(BaseModel):
    """One case: `when` is usually a template rendered before the node runs."""

    model_config = ConfigDict(extra="forbid")

    when: Any = Field(description='a condition, e.g. "{{ trigger.body.amount > 100 }}"')
    value: Any = Field(description="the output's value when this is the first case that holds")


class SwitchParams(BaseModel):
    """Params of the `switch` node."""

    model_config = ConfigDict(extra="forbid")

    cases: Annotated[list[SwitchCase], Field(min_length=1, max_length=MAX_CASES)]
    default: Any = None


def run(ctx: NodeContext, params: SwitchParams) -> dict[str, Any]:
    """Return `{"value": <first truthy case's value>}`, or the default, and which case matched."""
    for index, case in enumerate(params.cases):
        if case.when:
            return {"value": case.value, "case": index}
    return {"value": params.default, "case": None}


NODE = NodeSpec(
    type="switch",
    version=1,
    description=(
        "Evaluate cases in order and output {value} of the first whose `when` holds (else "
        "`default`); later nodes branch on it with "
        '"if": "{{ steps.<id>.value == \'...\' }}".'
    ),
    params_model=SwitchParams,
    run=run,
    effects=False,
    blocking=False,
)
