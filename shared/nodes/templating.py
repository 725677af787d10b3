"""Sandboxed Jinja2 templates over a run's context.

Workflow params are user-written templates evaluated thousands of times, so templates compile
once per distinct source (LRU cache) and render in Jinja's immutable sandbox: no attribute access
to dunders or internals, no mutation of the context, bounded ranges and repetitions.

The render context is::

    {"trigger": {"body", "headers", "query", "method", "received_at"},
     "steps": {<node_id>: <output>},
     "run": {"id", "workflow_id", "attempt"}}
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, Undefined
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from shared.nodes.contract import NodeError

__all__ = ["TemplateError", "check_syntax", "is_template", "render"]

# One `{{ ... }}` filling the whole string (surrounding whitespace aside): evaluated as an
# expression so `"{{ trigger.body.amount }}"` stays a number instead of becoming "150".
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>.*)\}\}\s*$", re.DOTALL)

# Repetition (`'a' * n`, `[0] * n`) and powers are the sandbox's cheap ways to exhaust memory or
# CPU from a one-line template; bound them.
_MAX_REPEAT_LEN = 1_000_000
_MAX_POWER_EXPONENT = 1_000
_MAX_CACHED = 4096


class TemplateError(NodeError):
    """A template failed to compile or render (syntax, sandbox violation, bad operation)."""


def _finalize(value: Any) -> Any:
    # Inside a larger string, a missing value reads better as nothing than as "None", and
    # objects as JSON (what users paste into URLs and bodies) rather than Python reprs.
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value


class _Environment(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # The stock sandbox returns an Undefined that prints as "" — silently swallowing an
        # escape attempt. Fail loudly so the author sees the template is refused.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Jinja tries attributes before keys, so `body.items` on a JSON object would be the dict
        # method rather than the "items" field. Payload fields must win.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > _MAX_REPEAT_LEN
                ):
                    raise SecurityError(f"repetition longer than {_MAX_REPEAT_LEN} is not allowed")
            return operator.mul(left, right)
        if operator_ == "**":
            if isinstance(right, int | float) and abs(right) > _MAX_POWER_EXPONENT:
                raise SecurityError(f"exponent larger than {_MAX_POWER_EXPONENT} is not allowed")
            return operator.pow(left, right)
        return super().call_binop(context, operator_, left, right)


_env = _Environment(autoescape=False, undefined=ChainableUndefined, finalize=_finalize)


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


def _render_string(source: str, context: Mapping[str, Any]) -> Any:
    expr = _whole_expression(source)
    try:
        if expr is not None:
            return _plain(_compile_expression(expr)(**context))
        return _compile_template(source).render(context)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template syntax error: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from exc
    except Exception as exc:
        # Anything a template can trigger (undefined arithmetic, bad filter args, 1/0) is a
        # user error in the workflow, never a worker crash.
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from exc


def render(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every template inside `value` (walking dicts and lists) against `context`.

    A string that is exactly one `{{ expr }}` keeps the expression's type (missing → None);
    any other string containing `{{`/`{%` renders to a string (missing values → "").
    Non-string leaves and dict keys are returned unchanged. Raises `TemplateError`.
    """
    if isinstance(value, str):
        return _render_string(value, context) if is_template(value) else value
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context) for v in value]
    return value


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
