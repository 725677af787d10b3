"""`filter`: continue the run only when conditions hold; otherwise end it successfully."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Annotated, Any, Literal

import re2
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.nodes import Halt, NodeContext, NodeError, NodeSpec, is_template

# Patterns and inputs are user data. Python's `re` backtracks: one pattern like `(a+)+$` on a
# long input holds the GIL for minutes (the job's heartbeat stops and RQ runs it twice). RE2
# matches in time linear in the input and refuses what it cannot do that way (backreferences,
# lookarounds), so the work of a match is bounded by the sizes below.
MAX_PATTERN_CHARS = 1000
MAX_MATCH_INPUT_CHARS = 100_000
# RE2 compiles a pattern into an automaton within this memory (`a{1000}{1000}`-style patterns
# are refused at compile time instead of growing it).
_MAX_PROGRAM_BYTES = 4 << 20
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.max_mem = _MAX_PROGRAM_BYTES
_RE2_OPTIONS.log_errors = False  # the error is ours to report, not RE2's to print on stderr

Op = Literal[
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "not_contains",
    "in",
    "exists",
    "not_exists",
    "matches",
]


class Condition(BaseModel):
    """One comparison `left <op> right` (`right` is ignored by exists / not_exists)."""

    model_config = ConfigDict(extra="forbid")

    left: Any = None
    op: Op
    right: Any = None

    @model_validator(mode="after")
    def _valid_pattern(self) -> Condition:
        # A literal regex can be checked at save time; a templated one only once rendered.
        if self.op == "matches" and isinstance(self.right, str) and not is_template(self.right):
            _compile(self.right, error=ValueError)
        return self


class FilterParams(BaseModel):
    """Params of the `filter` node: exactly one of `all` (AND) or `any` (OR)."""

    model_config = ConfigDict(extra="forbid")

    all: Annotated[list[Condition], Field(min_length=1, max_length=100)] | None = None
    any: Annotated[list[Condition], Field(min_length=1, max_length=100)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> FilterParams:
        if (self.all is None) == (self.any is None):
            raise ValueError("give exactly one of 'all' or 'any'")
        return self


@lru_cache(maxsize=256)
def _compile_re2(pattern: str) -> Any:
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _compile(pattern: str, *, error: type[Exception] = NodeError) -> Any:
    """The compiled RE2 pattern, or `error` naming what RE2 refused (syntax, backreference)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise error(f"regular expression longer than {MAX_PATTERN_CHARS} characters")
    try:
        return _compile_re2(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        raise error(
            f"invalid regular expression {pattern!r}: {reason} (RE2 syntax: no backreferences "
            "or lookarounds)"
        ) from None
    except UnicodeEncodeError:
        raise error(f"invalid regular expression {pattern!r}: not valid Unicode") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float | int | None:
    """Return `value` as a number if it is one or a numeric string (bools are not numbers)."""
    if _is_number(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    # A template inside a larger string yields a string ("150"); compared with a number, the
    # user means a numeric comparison.
    if _is_number(left) and isinstance(right, str) and _number(right) is not None:
        return left, _number(right)
    if _is_number(right) and isinstance(left, str) and _number(left) is not None:
        return _number(left), right
    if isinstance(left, bool) and isinstance(right, str) and right.lower() in ("true", "false"):
        return left, right.lower() == "true"
    if isinstance(right, bool) and isinstance(left, str) and left.lower() in ("true", "false"):
        return left.lower() == "true", right
    return left, right


def _equal(left: Any, right: Any) -> bool:
    left, right = _coerce_pair(left, right)
    return bool(left == right)


def _order(op: str, left: Any, right: Any) -> bool:
    # A missing value is neither greater nor smaller rather than an error, so a webhook that
    # lacks the field is filtered out instead of failing the run.
    if left is None or right is None:
        return False
    left, right = _coerce_pair(left, right)
    if isinstance(left, str) and isinstance(right, str):
        # "10" > "9" lexically is never what a workflow author means.
        left_number, right_number = _number(left), _number(right)
        if left_number is not None and right_number is not None:
            left, right = left_number, right_number
    comparable = (_is_number(left) and _is_number(right)) or (
        isinstance(left, str) and isinstance(right, str)
    )
    if not comparable:
        raise NodeError(
            f"cannot compare {type(left).__name__} {_short(left)} with "
            f"{type(right).__name__} {_short(right)} using {op!r}"
        )
    if op == "gt":
        return bool(left > right)
    if op == "gte":
        return bool(left >= right)
    if op == "lt":
        return bool(left < right)
    return bool(left <= right)


def _contains(container: Any, item: Any, op: str) -> bool:
    if isinstance(container, str):
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            return str(item) in container
        raise NodeError(f"{op!r}: cannot look for {type(item).__name__} in a string")
    if isinstance(container, list):
        return any(_equal(element, item) for element in container)
    if isinstance(container, dict):
        return str(item) in container
    raise NodeError(
        f"{op!r} needs a string, list or object to search, got {type(container).__name__} "
        f"{_short(container)}"
    )


def _matches(value: Any, pattern: Any) -> bool:
    if not isinstance(pattern, str):
        raise NodeError(f"'matches' needs a string pattern, got {type(pattern).__name__}")
    if value is None:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise NodeError(f"'matches' needs a string to match, got {type(value).__name__}")
    if len(value) > MAX_MATCH_INPUT_CHARS:
        raise NodeError(f"'matches' input longer than {MAX_MATCH_INPUT_CHARS} characters")
    try:
        return _compile(pattern).search(value) is not None
    except UnicodeEncodeError:
        # RE2 works on UTF-8; a lone surrogate (only a template can build one) has none.
        raise NodeError("'matches' input is not valid Unicode") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def evaluate(condition: Condition) -> bool:
    """Evaluate one condition; raise NodeError when its operands cannot be compared."""
    left, op, right = condition.left, condition.op, condition.right
    if op == "eq":
        return _equal(left, right)
    if op == "ne":
        return not _equal(left, right)
    if op in ("gt", "gte", "lt", "lte"):
        return _order(op, left, right)
    if op == "contains":
        return _contains(left, right, op)
    if op == "not_contains":
        return not _contains(left, right, op)
    if op == "in":
        return _contains(right, left, op)
    if op == "exists":
        return left is not None
    if op == "not_exists":
        return left is None
    return _matches(left, right)


def run(ctx: NodeContext, params: FilterParams) -> dict[str, Any] | Halt:
    """Evaluate every condition; return `{passed, results}` or Halt with it when not passed."""
    conditions = params.all if params.all is not None else params.any or []
    # Evaluate all of them (no short-circuit) so the run record shows each result.
    results = [evaluate(condition) for condition in conditions]
    passed = all(results) if params.all is not None else any(results)
    output = {"passed": passed, "results": results}
    if not passed:
        return Halt(output, reason="filter conditions not met")
    return output


NODE = NodeSpec(
    type="filter",
    version=1,
    description=(
        "Continue only when all (or any) conditions hold; otherwise end the run as succeeded "
        "and skip the remaining steps."
    ),
    params_model=FilterParams,
    run=run,
    effects=False,
    blocking=False,
)
