"""A plugin that wrongly declares itself non-blocking and then holds the loop (tests only)."""

from __future__ import annotations

import time

from pydantic import BaseModel

from shared.nodes import NodeContext, NodeSpec


class HogParams(BaseModel):
    seconds: float


def run(ctx: NodeContext, params: HogParams) -> dict[str, float]:
    time.sleep(params.seconds)  # stands for a CPU-bound loop that never yields
    return {"held": params.seconds}


NODE = NodeSpec(
    type="test_hog",
    version=1,
    description="Hold the event loop (tests only).",
    params_model=HogParams,
    run=run,
    effects=False,
    blocking=False,
)
