"""`call_workflow`: run another workflow of the same user as a child run, and use its result.

The child's `trigger.body` is `input`. With `wait` (the default) the run parks until the child
ends, holding no worker meanwhile; the engine starts the child exactly once per step, so a
crashed worker never starts it twice.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shared.nodes import CallWorkflow, NodeContext, NodeSpec

MAX_WAIT_S = 30 * 24 * 3600


class CallWorkflowParams(BaseModel):
    """Params of the `call_workflow` node."""

    model_config = ConfigDict(extra="forbid")

    workflow: Annotated[
        str,
        Field(
            min_length=1,
            max_length=200,
            description="the id or the name of one of your workflows",
        ),
    ]
    input: Annotated[Any, Field(description="the child run's trigger.body")] = None
    wait: Annotated[
        bool, Field(description="wait for the child run to end and output its result")
    ] = True
    timeout_s: Annotated[
        float,
        Field(
            gt=0,
            le=MAX_WAIT_S,
            allow_inf_nan=False,
            description="with wait: fail the step when the child has not ended by then",
        ),
    ] = 24 * 3600


async def run(ctx: NodeContext, params: CallWorkflowParams) -> CallWorkflow:
    """Ask the engine to start the child run (and, with `wait`, to park until it ends).

    Async although it awaits nothing: the engine then treats the step as one that waits (it
    does, on the database), so the run gives its pooled connection back before its nodes run
    rather than holding it while starting the child needs another.
    """
    return CallWorkflow(
        workflow=params.workflow, body=params.input, wait=params.wait, timeout_s=params.timeout_s
    )


NODE = NodeSpec(
    type="call_workflow",
    version=1,
    description=(
        "Run another of your workflows (by id or name) with `input` as its trigger.body. "
        'With wait (default) the output is {"run_id", "status", "output"} once the child '
        'ends (a failed child fails the step); without, {"run_id"} at once.'
    ),
    params_model=CallWorkflowParams,
    run=run,
    # Starting the child is the effect: the step is checkpointed and never repeated.
    effects=True,
    blocking=False,
)
