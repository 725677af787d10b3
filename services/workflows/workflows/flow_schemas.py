"""The flow-control fields of a workflow body: `concurrency`, `throttle`, `debounce`, `priority`.

Checked here so a bad value or a key template that does not compile is a 422 at save naming
the field (`body.concurrency.key`), never a run that fails later. docs/flow-control.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from shared.flow import MAX_KEY_CHARS
from shared.flow_keys import key_problems

KeyTemplate = Annotated[str, StringConstraints(min_length=1, max_length=MAX_KEY_CHARS * 5)]
# A day: longer windows are schedules, not flow control.
MAX_PERIOD_S = 86_400.0


def _checked_key(value: str | None) -> str | None:
    if value is None:
        return None
    problems = key_problems(value, "key")
    if problems:
        raise ValueError(f"key is not a valid template: {problems[0][1]}")
    return value


class ConcurrencyIn(BaseModel):
    """At most `limit` runs per key value running or parked at once (without `key`, per
    workflow); the others wait in arrival order, holding no worker slot."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=10_000)]
    key: KeyTemplate | None = None

    _key = field_validator("key")(_checked_key)


class ThrottleIn(BaseModel):
    """At most `limit` runs start per `period_s` seconds per key; the rest start later."""

    model_config = ConfigDict(extra="forbid")

    limit: Annotated[int, Field(ge=1, le=10_000)]
    period_s: Annotated[float, Field(gt=0, le=MAX_PERIOD_S)]
    key: KeyTemplate | None = None

    _key = field_validator("key")(_checked_key)


class DebounceIn(BaseModel):
    """Triggers with one key within `period_s` of each other make one run (the last body)."""

    model_config = ConfigDict(extra="forbid")

    period_s: Annotated[float, Field(gt=0, le=MAX_PERIOD_S)]
    key: KeyTemplate | None = None
    max_wait_s: Annotated[float, Field(gt=0, le=MAX_PERIOD_S)] | None = None

    _key = field_validator("key")(_checked_key)

    @field_validator("max_wait_s")
    @classmethod
    def _not_shorter_than_period(cls, value: float | None, info: Any) -> float | None:
        period = info.data.get("period_s")
        if value is not None and period is not None and value < period:
            raise ValueError("max_wait_s must be at least period_s")
        return value


PriorityIn = Literal["high", "normal", "low"]
FLOW_FIELD_MODELS = {"concurrency": ConcurrencyIn, "throttle": ThrottleIn, "debounce": DebounceIn}


def stored_flow(fields: dict[str, Any]) -> dict[str, Any]:
    """What `workflows.flow` keeps of the given fields: set ones only, defaults left out."""
    stored: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None or (name == "priority" and value == "normal"):
            continue
        stored[name] = (
            value.model_dump(exclude_none=True) if isinstance(value, BaseModel) else value
        )
    return stored
