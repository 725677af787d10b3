"""`wait_for_callback`: park the run until someone POSTs to its resume URL (or a timeout).

For a human approval or an external job: a step before this one sends `{{ run.resume_url }}`
to whoever will answer; their POST's JSON body becomes this step's output. The run holds no
worker while it waits.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.nodes import NodeContext, NodeSpec, Park

MAX_WAIT_S = 30 * 24 * 3600


class WaitForCallbackParams(BaseModel):
    """Params of the `wait_for_callback` node."""

    model_config = ConfigDict(extra="forbid")

    timeout_s: Annotated[
        float,
        Field(
            gt=0,
            le=MAX_WAIT_S,
            allow_inf_nan=False,
            description="fail the step when no callback arrived within this many seconds",
        ),
    ] = 7 * 24 * 3600


def run(ctx: NodeContext, params: WaitForCallbackParams) -> Park:
    """Ask the engine to park the run until the callback or the timeout."""
    return Park(resume_in_s=params.timeout_s, callback=True)


NODE = NodeSpec(
    type="wait_for_callback",
    version=1,
    description=(
        "Pause the run until a POST to its resume URL ({{ run.resume_url }}), whose JSON body "
        "becomes this step's output; fail after timeout_s (default 7 days, at most 30)."
    ),
    params_model=WaitForCallbackParams,
    run=run,
    effects=False,
    blocking=False,
)
