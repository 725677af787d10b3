"""`delay`: wait before the next step."""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from shared.nodes import NodeContext, NodeSpec

# The worker holds the job while it sleeps; an hour is the longest wait it should absorb.
MAX_DELAY_S = 3600


class DelayParams(BaseModel):
    """Params of the `delay` node."""

    model_config = ConfigDict(extra="forbid")

    seconds: Annotated[float, Field(ge=0, le=MAX_DELAY_S, allow_inf_nan=False)]


async def run(ctx: NodeContext, params: DelayParams) -> dict[str, float]:
    """Sleep `seconds`; return `{"waited_s": seconds}`."""
    await asyncio.sleep(params.seconds)
    return {"waited_s": params.seconds}


NODE = NodeSpec(
    type="delay",
    version=1,
    description=f"Wait a number of seconds (0 to {MAX_DELAY_S}) before the next step.",
    params_model=DelayParams,
    run=run,
)
