"""A third-party-style plugin whose code blocks: `time.sleep`, declared blocking."""

from __future__ import annotations

import time

from pydantic import BaseModel

from shared.nodes import NodeContext, NodeSpec


class SleepyParams(BaseModel):
    seconds: float


def run(ctx: NodeContext, params: SleepyParams) -> dict[str, float]:
    time.sleep(params.seconds)
    return {"slept": params.seconds}


NODE = NodeSpec(
    type="test_sleepy",
    version=1,
    description="Sleep synchronously (tests only).",
    params_model=SleepyParams,
    run=run,
    blocking=True,
)
