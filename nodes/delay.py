"""`delay`: wait before the next step; a long wait parks the run instead of holding a worker."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.nodes import NodeContext, NodeSpec, Park

MAX_DELAY_S = 30 * 24 * 3600


class DelayParams(BaseModel):
    """Params of the `delay` node."""

    model_config = ConfigDict(extra="forbid")

    seconds: Annotated[float, Field(ge=0, le=MAX_DELAY_S, allow_inf_nan=False)]


async def run(ctx: NodeContext, params: DelayParams) -> dict[str, float] | Park:
    """Wait `seconds`; return `{"waited_s": seconds}`.

    Up to the worker's park threshold the wait happens here (a slot is cheaper than a round
    trip through the scheduler); longer, the run is parked and resumed on any worker.
    """
    output = {"waited_s": params.seconds}
    if params.seconds > ctx.park_after_s:
        return Park(resume_in_s=params.seconds, output=output)
    await asyncio.sleep(params.seconds)
    return output


NODE = NodeSpec(
    type="delay",
    version=1,
    description=(
        f"Wait a number of seconds (0 to {MAX_DELAY_S}, 30 days) before the next step. Waits "
        "longer than the worker's park threshold (5 s by default) free the worker meanwhile."
    ),
    params_model=DelayParams,
    run=run,
    effects=False,
)
