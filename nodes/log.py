"""`log`: write a message to the worker's log, tagged with the run and node."""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.nodes import NodeContext, NodeSpec

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


class LogParams(BaseModel):
    """Params of the `log` node."""

    model_config = ConfigDict(extra="forbid")

    message: Any
    level: Literal["debug", "info", "warning", "error"] = "info"


def run(ctx: NodeContext, params: LogParams) -> dict[str, Any]:
    """Log `message` at `level` via the run's logger; return `{"message": message}`."""
    message = params.message
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    ctx.logger.log(
        _LEVELS[params.level],
        "%s",
        text,
        # Lets log pipelines join the line to its run without parsing the message.
        extra={"run_id": ctx.run_id, "workflow_id": ctx.workflow_id, "node_id": ctx.node_id},
    )
    return {"message": message}


NODE = NodeSpec(
    type="log",
    version=1,
    description="Write a message (any value) to the worker log, tagged with the run and node.",
    params_model=LogParams,
    run=run,
    effects=False,
    blocking=False,
)
