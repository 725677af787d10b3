"""Sandboxed Jinja2 templates over a run's context.

Workflow params are user-written templates evaluated thousands of times, so templates compile
once per distinct source (LRU cache) and render in Jinja's immutable sandbox: no attribute access
to dunders or internals, no mutation of the context, and every way to allocate or loop bounded
in size, total work and time (template_env.py, template_limits.py). Compiling runs nothing of
the template, so saving a workflow costs the same whatever its templates would compute.

The render context is::

    {"trigger": {"body", "headers", "query", "method", "received_at"},
     "steps": {<node_id>: <output>},
     "run": {"id", "workflow_id", "attempt"}}
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError

from shared.nodes.contract import NodeError
from shared.nodes.template_env import BoundedEnvironment
from shared.nodes.template_limits import (
    MAX_VALUE_BYTES,
    RenderSliceExceeded,
    TemplateLimit,
    check_value,
    render_budget,
)

__all__ = [
    "RenderSliceExceeded",
    "TemplateError",
    "check_syntax",
    "is_template",
    "render",
    "render_measured",
]

# One `{{ ... }}` filling the whole string (surrounding whitespace aside): evaluated as an
# expression so `"{{ trigger.body.amount }}"` stays a number instead of becoming "150".
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

_MAX_CACHED = 4096


class TemplateError(NodeError):
    """A template failed to compile or render (syntax, sandbox violation, bad operation)."""


_env = BoundedEnvironment(autoescape=False, undefined=ChainableUndefined)


@lru_cache(maxsize=_MAX_CACHED)
def _compile_template(source: str) -> Template:
    return _env.from_string(source)


@lru_cache(maxsize=_MAX_CACHED)
def _compile_expression(expr: str) -> TemplateExpression:
    return _env.compile_expression(expr, undefined_to_none=True)


def is_template(value: Any) -> bool:
    """Tell whether `value` is a string that will be rendered (contains `{{` or `{%`)."""
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _whole_expression(source: str) -> str | None:
    match = _WHOLE_EXPRESSION.match(source)
    if match is None:
        return None
    expr = match.group("expr")
    # "{{ a }} and {{ b }}" also matches the pattern; it is a string template, not one expression.
    if "{{" in expr or "}}" in expr or "{%" in expr:
        return None
    return expr


def _plain(value: Any) -> Any:
    # An expression can return Undefined nested in a container (`{{ [trigger.nope] }}`); it
    # must not leak out of the sandbox as an object the engine cannot serialise.
    if isinstance(value, Undefined):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _render_bounded(source: str, context: Mapping[str, Any]) -> Any:
    expr = _whole_expression(source)
    if expr is not None:
        value = _plain(_compile_expression(expr)(**context))
        # What the engine will store and pass on: as bounded as any printed output.
        check_value(value, "result")
        return value
    pieces: list[str] = []
    size = 0
    # Literal text and printed values, counted as they come rather than joined first.
    for piece in _compile_template(source).generate(context):
        size += len(piece)
        if size > MAX_VALUE_BYTES:
            raise TemplateLimit(f"output longer than {MAX_VALUE_BYTES:,} characters")
        pieces.append(piece)
    return "".join(pieces)


def _render_string(source: str, context: Mapping[str, Any]) -> Any:
    try:
        return _render_bounded(source, context)
    except RenderSliceExceeded:
        raise
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from exc
    except Exception as exc:
        # Anything a template can trigger (undefined arithmetic, bad filter args, 1/0) is a
        # user error in the workflow, never a worker crash.
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from exc


def _render_value(value: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        return _render_string(value, context) if is_template(value) else value
    if isinstance(value, dict):
        return {k: _render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_value(v, context) for v in value]
    return value


def render(
    value: Any,
    context: Mapping[str, Any],
    *,
    slice_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Render every template inside `value` (walking dicts and lists) against `context`.

    A string that is exactly one `{{ expr }}` keeps the expression's type (missing → None);
    any other string containing `{{`/`{%` renders to a string (missing values → "").
    Non-string leaves and dict keys are returned unchanged. All templates in `value` share one
    budget of size, work and time (template_limits.py). Raises `TemplateError`, or
    `RenderSliceExceeded` once past `slice_s` seconds (when given).
    """
    with render_budget(slice_s, clock):
        return _render_value(value, context)


def render_measured(value: Any, context: Mapping[str, Any]) -> tuple[bool, Any, float]:
    """`render` for another process: (True, result, CPU seconds) or (False, error message, CPU
    seconds). Plain data both ways, so it pickles whatever the error's class."""
    started = time.process_time()
    try:
        result = render(value, context, clock=time.process_time)
    except NodeError as exc:
        return False, exc.message, time.process_time() - started
    return True, result, time.process_time() - started


def _syntax_error(source: str) -> str | None:
    expr = _whole_expression(source)
    try:
        if expr is not None:
            _compile_expression(expr)
        else:
            _compile_template(source)
    except TemplateSyntaxError as exc:
        return f"template syntax error: {exc.message}"
    return None


def check_syntax(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Return `(path, message)` for every template in `value` that does not compile.

    Paths are dotted from the root of `value` (`"all.0.left"`); `path` prefixes them.
    Used at save time, so a workflow never fails at run time on a typo in a template.
    """
    issues: list[tuple[str, str]] = []
    if isinstance(value, str):
        if is_template(value):
            message = _syntax_error(value)
            if message is not None:
                issues.append((path, message))
    elif isinstance(value, dict):
        for key, item in value.items():
            issues.extend(check_syntax(item, f"{path}.{key}" if path else str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            issues.extend(check_syntax(item, f"{path}.{index}" if path else str(index)))
    return issues
