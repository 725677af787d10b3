"""The node plugin contract: what a node declares, what it receives, and how it signals outcomes.

A node is described by a `NodeSpec` (type name, version, params model, run function). The
description is plain data so the catalogue (`GET /nodes`) and save-time validation never run
node code; only the worker calls `run`.
"""

from __future__ import annotations

import builtins
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Generic, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Halt",
    "NodeContext",
    "NodeDefinition",
    "NodeError",
    "NodeSettings",
    "NodeSpec",
    "Park",
    "RetryPolicy",
    "RetryableNodeError",
]

P = TypeVar("P", bound=BaseModel)

# Node ids become `steps.<id>` in templates, so they must be valid Jinja identifiers.
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Items of one for-each step run at most this many at once (the default: 4).
MAX_FOR_EACH_CONCURRENCY = 64


@dataclass
class NodeContext:
    """What a running node may use besides its params.

    `http` is the process-wide SSRF-guarded client: nodes must use it rather than build their own
    so the egress policy and connection reuse apply to every outgoing request.
    """

    run_id: str
    workflow_id: str
    node_id: str
    attempt: int
    http: httpx.AsyncClient
    logger: logging.Logger
    # A wait longer than this should return `Park` rather than hold the worker's slot.
    park_after_s: float = 5.0


@dataclass(frozen=True)
class NodeSpec(Generic[P]):
    """A node type: its name, version, params model and run function.

    `run(ctx, params)` receives params already rendered from templates and validated against
    `params_model`; it may be sync or async and returns a JSON-serialisable output, or a `Halt`.
    `secret_params` names params whose values the engine must never record.

    `effects`: whether a run of the node changes something outside the run (calls an API,
    sends a message). The engine records an effectful step durably before the next one starts
    and never executes it again for the same run; pure steps are recomputed on resume. A
    plugin that says nothing (None) is treated as effectful: repeating a pure step is harmless,
    repeating a payment is not.

    `blocking`: whether `run` may block the calling thread (synchronous I/O, heavy CPU). Such
    nodes run in a worker thread, so the other runs sharing the process's event loop go on and
    the step's timeout holds. None means "blocking when `run` is a plain function"; a cheap
    synchronous node (the core `transform`, `filter`) says False and runs inline.
    """

    type: str
    version: int
    description: str
    # `builtins.type` because the `type` field above shadows the builtin in this class body.
    params_model: builtins.type[P]
    run: Callable[[NodeContext, P], Any | Awaitable[Any]]
    secret_params: frozenset[str] = field(default_factory=frozenset)
    effects: bool | None = None
    blocking: bool | None = None

    @property
    def has_effects(self) -> bool:
        """Whether the engine checkpoints this node's steps (unknown counts as yes)."""
        return self.effects is not False

    @property
    def runs_in_thread(self) -> bool:
        """Whether the engine runs `run` in a worker thread rather than on its event loop."""
        if self.blocking is not None:
            return self.blocking
        return not inspect.iscoroutinefunction(self.run)

    @property
    def runs_inline(self) -> bool:
        """Whether a step finishes without yielding to the loop (sync, non-blocking code)."""
        return not self.runs_in_thread and not inspect.iscoroutinefunction(self.run)

    def params_schema(self) -> dict[str, Any]:
        """Return the JSON Schema of the params model (what `GET /nodes` shows)."""
        return self.params_model.model_json_schema()

    async def execute(self, ctx: NodeContext, params: P) -> Any:
        """Call `run` and await its result when it is awaitable, so callers need not care."""
        result = self.run(ctx, params)
        if inspect.isawaitable(result):
            return await result
        return result


@dataclass(frozen=True)
class Halt:
    """Returned by a node to end the run successfully; the remaining steps are marked skipped.

    The engine records `output` as the node's output and `reason` on the run.
    """

    output: Any
    reason: str


@dataclass(frozen=True)
class Park:
    """Returned by a node to end its step later, on any worker, without holding a slot meanwhile.

    The run is checkpointed and shows status `waiting` with `resume_at` = now + `resume_in_s`.
    At that time the step succeeds with `output`. With `callback`, a POST to the run's resume
    URL (`run.resume_url`) before then ends the wait early, its JSON body becoming the output;
    a callback wait that times out fails the step instead.
    """

    resume_in_s: float
    output: Any = None
    callback: bool = False


class NodeError(Exception):
    """The step failed and retrying would not help (bad input, 4xx answer, refused address)."""

    #: Lets the engine decide with one attribute rather than the order of `except` clauses.
    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RetryableNodeError(NodeError):
    """The step failed for a reason that may pass (timeout, 429, 5xx).

    The engine retries it per the node's retry policy; `retry_after` (seconds) comes from a
    `Retry-After` answer and, when set, should be waited instead of the policy's backoff.
    It subclasses `NodeError` so one `except NodeError` catches every node failure: check
    `exc.retryable` (or catch this class first) to tell them apart.
    """

    retryable = True

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryPolicy(BaseModel):
    """How often and how patiently the engine retries a step that raised RetryableNodeError."""

    model_config = ConfigDict(extra="forbid")

    max: Annotated[int, Field(ge=0, le=10, description="retries after the first attempt")]
    backoff: Annotated[
        float, Field(ge=0, description="seconds before the first retry (the engine may grow it)")
    ] = 1.0


class NodeSettings(BaseModel):
    """Per-node settings that sit beside `params` in a workflow definition."""

    model_config = ConfigDict(extra="forbid")

    retry: RetryPolicy | None = None
    timeout_s: Annotated[float, Field(gt=0, le=3600)] | None = None
    continue_on_fail: bool = False
    # `if` is a Python keyword: the field has another name, the definition says "if".
    condition: str | None = Field(
        default=None,
        alias="if",
        max_length=4096,
        description="a template; when it renders falsy the step is skipped and the run goes on",
    )
    # The graph (docs/nodes.md): without `after` a node follows the one listed before it.
    after: Annotated[list[str], Field(max_length=100)] | None = Field(
        default=None, description="ids of the nodes this one starts after ([]: with the trigger)"
    )
    join: Literal["all", "any"] = Field(
        default="all", description="start after every `after` node ended, or the first that ran"
    )
    for_each: str | None = Field(
        default=None,
        max_length=4096,
        description="a template giving a list: the node runs once per item (`item`, `item_index`)",
    )
    concurrency: Annotated[int, Field(ge=1, le=MAX_FOR_EACH_CONCURRENCY)] | None = Field(
        default=None, description="items of a for-each run at most this many at once (default 4)"
    )


class NodeDefinition(NodeSettings):
    """One entry of a workflow's `nodes` list, as saved by the workflows service."""

    id: Annotated[str, Field(min_length=1, max_length=64, pattern=NODE_ID_PATTERN)]
    type: Annotated[str, Field(min_length=1)]
    params: dict[str, Any] = Field(default_factory=dict)
