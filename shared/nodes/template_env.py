"""The Jinja environment user templates run in: the immutable sandbox, with every way to build
something big or spin for long bounded (see template_limits.py for the limits).

What a template can do, and where each is bounded:
- operators (`* + - / // % **`): all intercepted (`call_binop`), sizes checked before computing;
  intercepting them also stops Jinja folding `{{ '%400000000d' % 1 }}` at compile (save) time;
- `~` concatenation and `{% for %}` loops: rewritten at compile time into calls of
  `bounded_concat` and `bounded_iter` (`_generate`), which charge the budget;
- method calls (`'x'.center(n)`): `call` admits only the builtin methods of template_filters.py,
  each with its bound; `str.format` goes through a formatter that checks each field's spec;
- filters: only the bounded ones of template_filters.py exist;
- output (`{{ }}`): `finalize` charges every printed value; globals: `range` is bounded by the
  sandbox, `lipsum` by a wrapper.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from string import Formatter
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from jinja2.visitor import NodeTransformer

from shared.nodes.template_filters import METHOD_BOUNDS, bounded_filters
from shared.nodes.template_limits import (
    CALL_COST,
    ITERATION_COST,
    MAX_INT_BITS,
    MAX_VALUE_BYTES,
    TemplateLimit,
    charge,
    check_int_bits,
    measure,
    printf_bound,
    spec_bound,
)

__all__ = ["BoundedEnvironment"]

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_SEQUENCES = (str, bytes, list, tuple)
_BUILTIN_VALUES = (str, bytes, int, float, list, tuple, dict)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _binop_bound(op: str, left: Any, right: Any) -> int:
    """The size of `left <op> right` before computing it; raises TemplateLimit past a limit."""
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and _is_int(times):
                unit = len(seq) if isinstance(seq, str | bytes) else measure(seq)
                size = int(unit) * max(int(times), 0)
                if size > MAX_VALUE_BYTES:
                    raise TemplateLimit(
                        f"repetition would build {size:,} bytes (limit {MAX_VALUE_BYTES:,})"
                    )
                return size
        if _is_int(left) and _is_int(right):
            check_int_bits(left.bit_length() + right.bit_length(), "multiplication")
    elif op == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if right > MAX_INT_BITS:
            raise TemplateLimit(f"exponent {right:,} is too large (limit {MAX_INT_BITS:,})")
        check_int_bits((left.bit_length() - 1) * right + 1, "power")
    elif op == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        return measure(left) + measure(right)
    elif op in ("+", "-") and _is_int(left) and _is_int(right):
        check_int_bits(max(left.bit_length(), right.bit_length()) + 1, "addition")
    elif op == "%" and isinstance(left, str):
        return printf_bound(left, right)
    return ITERATION_COST


class _BoundingTransformer(NodeTransformer):
    """Routes `~` and loop iteration through the environment's bounded helpers."""

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        helper = nodes.EnvironmentAttribute("bounded_concat", lineno=node.lineno)
        return nodes.Call(helper, list(node.nodes), [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        # Literal text inside the loop is output again on every iteration: charge it there.
        text = sum(len(data.data) for data in node.find_all(nodes.TemplateData))
        helper = nodes.EnvironmentAttribute("bounded_iter", lineno=node.lineno)
        cost = nodes.Const(ITERATION_COST + text, lineno=node.lineno)
        node.iter = nodes.Call(helper, [node.iter, cost], [], None, None, lineno=node.lineno)
        return node


class _BoundedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        charge(spec_bound(value, format_spec), "format field")
        return super().format_field(value, format_spec)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if not (0 <= n <= 20 and 0 <= min <= max <= 200):
        raise TemplateLimit("lipsum() takes at most 20 paragraphs of at most 200 words")
    return str(generate_lorem_ipsum(n, html, min, max))


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounded operators, calls, filters, loops and output."""

    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **options: Any) -> None:
        # optimized=False: the optimizer folds constant sub-expressions at compile time, which
        # would run template code when a workflow is saved.
        super().__init__(optimized=False, finalize=self._finalize, **options)
        self.filters = bounded_filters(self.filters)
        self.globals["lipsum"] = _lipsum

    @staticmethod
    @pass_context
    def _finalize(context: Context, value: Any) -> Any:
        # Inside a larger string, a missing value reads better as nothing than as "None", and
        # objects as JSON (what users paste into URLs and bodies) rather than Python reprs.
        charge(len(value) + 2 if type(value) is str else measure(value), "output")
        if value is None:
            return ""
        if isinstance(value, dict | list):
            return json.dumps(value, default=str, ensure_ascii=False)
        return value

    def _generate(
        self,
        source: nodes.Template,
        name: str | None,
        filename: str | None,
        defer_init: bool = False,
    ) -> str:
        # Jinja's documented hook to change how a parsed template becomes code.
        source = _BoundingTransformer().visit(source)
        return super()._generate(source, name, filename, defer_init)

    @staticmethod
    def bounded_concat(*parts: Any) -> str:
        """`a ~ b ~ c`, refused when the result would be too large."""
        charge(sum(measure(part) for part in parts), "'~' concatenation")
        return "".join(str(part) for part in parts)

    @staticmethod
    def bounded_iter(iterable: Iterable[Any], cost: int) -> Iterator[Any]:
        """A loop's items, each charged `cost` (the iteration and the literal text it prints)."""
        if isinstance(iterable, Undefined):
            iterable = ()
        for item in iterable:
            charge(cost, "loop iteration")
            yield item

    def unsafe_undefined(self, obj: Any, attribute: str) -> Undefined:
        # The stock sandbox returns an Undefined that prints as "" — silently swallowing an
        # escape attempt. Fail loudly so the author sees the template is refused.
        raise SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def getattr(self, obj: Any, attribute: str) -> Any:
        charge(1, "attribute access")
        # Jinja tries attributes before keys, so `body.items` on a JSON object would be the dict
        # method rather than the "items" field. Payload fields must win.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        charge(_binop_bound(operator_, left, right), f"operator {operator_!r}")
        return _BINOPS[operator_](left, right)

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, _BUILTIN_VALUES) and not isinstance(owner, type):
            name = getattr(obj, "__name__", "")
            bound = METHOD_BOUNDS.get(name)
            if bound is None:
                raise SecurityError(
                    f"method {name!r} of {type(owner).__name__!r} is not available in templates"
                )
            charge(bound(owner, args, kwargs), f"{type(owner).__name__}.{name}()")
        else:
            charge(CALL_COST, "call")
            if isinstance(obj, LoopContext) and args:
                # `loop(children)` in a recursive loop iterates outside the rewritten `for`.
                args = (self.bounded_iter(args[0], ITERATION_COST), *args[1:])
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if getattr(value, "__name__", None) not in ("format", "format_map"):
            return None
        if not isinstance(getattr(value, "__self__", None), str):
            return None
        owner: str = value.__self__
        formatter: Formatter = _BoundedFormatter(self)

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            positional: tuple[Any, ...] = args
            if value.__name__ == "format_map":
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                positional, kwargs = (), args[0]
            charge(len(owner), "str.format")
            return str(formatter.vformat(owner, positional, kwargs))

        return bounded_format
