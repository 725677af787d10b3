"""Jinja's filters and the sandbox's method calls, each with the bound of what it may build.

A filter or method whose output can outgrow its input by a parameter (`center(10**9)`,
`replace('', big)`, `batch(10**9, 'x')`) gets a rule computing an upper bound of its output from
its arguments, charged before it runs. Everything else builds at most a small multiple of its
input, which is itself bounded. Filters and methods not listed here are not available to
templates at all, so a Jinja upgrade adding one cannot add an unbounded path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import pass_context
from jinja2.runtime import Context, Undefined

from shared.nodes.template_limits import (
    ITERATION_COST,
    MAX_VALUE_BYTES,
    TemplateLimit,
    charge,
    check_int_bits,
    measure,
    printf_bound,
)

__all__ = ["METHOD_BOUNDS", "bounded_filters"]

Bound = Callable[[Any, tuple[Any, ...], dict[str, Any]], int]


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str, default: Any) -> Any:
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _count(value: Any) -> int:
    """A count argument as an int (anything else is left for the callee to refuse)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return 0
    return max(value, 0)


def _text(value: Any) -> int:
    return measure(value)


def _width(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return max(_text(value), _count(_arg(args, kwargs, 0, "width", 80)))


def _replace(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    text = value if isinstance(value, str | bytes) else str(value)[: MAX_VALUE_BYTES + 1]
    old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
    limit = _arg(args, kwargs, 2, "count", -1)
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(text)
    hits = text.count(old) if old else len(text) + 1  # type: ignore[arg-type]
    if isinstance(limit, int) and limit >= 0:
        hits = min(hits, limit)
    return len(text) + hits * max(0, len(new) - len(old))


def _join(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    separator = _arg(args, kwargs, 0, "d", "")
    items = value if isinstance(value, list | tuple) else ()
    return _text(items) + _text(separator) * len(items)


def _indent(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    width = _arg(args, kwargs, 0, "width", 4)
    per_line = len(width) if isinstance(width, str) else _count(width)
    lines = value.count("\n") + 1 if isinstance(value, str) else 1
    return _text(value) + lines * per_line


def _wordwrap(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    wrapstring = _arg(args, kwargs, 2, "wrapstring", "\n")
    return _text(value) * (1 + len(wrapstring if isinstance(wrapstring, str) else "\n"))


def _format(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return printf_bound(str(value)[: MAX_VALUE_BYTES + 1], kwargs or args)


def _groups(count_arg: str, index: int) -> Bound:
    # batch/slice pad with `fill_with` up to a count given by the template.
    def bound(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        groups = _count(_arg(args, kwargs, index, count_arg, 1))
        fill = _arg(args, kwargs, index + 1, "fill_with", None)
        return _text(value) * 2 + groups * (ITERATION_COST + _text(fill))

    return bound


def _scaled(factor: int) -> Bound:
    def bound(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        return _text(value) * factor

    return bound


def _small(value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return ITERATION_COST


# Filters by name → the bound of their output. `measure` estimates JSON size, so tojson/string
# are charged 1x (control characters escaped as \uXXXX can make the real string up to 6x);
# HTML escaping grows text up to 6x (`"` → `&#34;`), percent-encoding 3x.
FILTER_BOUNDS: dict[str, Bound] = {
    "center": _width,
    "indent": _indent,
    "wordwrap": _wordwrap,
    "format": _format,
    "replace": _replace,
    "join": _join,
    "batch": _groups("linecount", 0),
    "slice": _groups("slices", 0),
    **dict.fromkeys(("tojson", "string"), _scaled(1)),
    **dict.fromkeys(("pprint", "list"), _scaled(2)),
    "urlencode": _scaled(3),
    **dict.fromkeys(("escape", "e", "forceescape", "xmlattr", "urlize"), _scaled(6)),
    **dict.fromkeys(
        [
            "abs",
            "attr",
            "capitalize",
            "count",
            "d",
            "default",
            "dictsort",
            "filesizeformat",
            "first",
            "float",
            "groupby",
            "int",
            "items",
            "last",
            "length",
            "lower",
            "map",
            "max",
            "min",
            "random",
            "reject",
            "rejectattr",
            "reverse",
            "round",
            "safe",
            "select",
            "selectattr",
            "sort",
            "striptags",
            "sum",
            "title",
            "trim",
            "truncate",
            "unique",
            "upper",
            "wordcount",
        ],
        _small,
    ),
}


def _pass(func: Callable[..., Any], context: Context) -> tuple[Any, ...]:
    kind = getattr(getattr(func, "jinja_pass_arg", None), "name", None)
    if kind == "context":
        return (context,)
    if kind == "eval_context":
        return (context.eval_ctx,)
    if kind == "environment":
        return (context.environment,)
    return ()


def _materialized(value: Any) -> Any:
    # A range or a generator (`map`, `select`) cannot be measured without running it: run it
    # here, one charged item at a time, so the bound sees a list.
    if isinstance(value, str | bytes | Mapping | list | tuple | Undefined):
        return value
    if not isinstance(value, Iterable):
        return value
    items = []
    for item in value:
        charge(ITERATION_COST, "filter input")
        items.append(item)
    return items


def _bounded(name: str, func: Callable[..., Any], bound: Bound) -> Callable[..., Any]:
    # pass_context also keeps Jinja from folding a constant filter call at compile time (it
    # cannot, without a context): `{{ 'x' | center(10**9) }}` is never computed on save.
    @pass_context
    def filter_(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        value = _materialized(value)
        charge(bound(value, args, kwargs), f"filter {name!r}")
        return func(*_pass(func, context), value, *args, **kwargs)

    return filter_


def bounded_filters(filters: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """The filters templates get: each one with a bound, the rest left out."""
    return {name: _bounded(name, filters[name], bound) for name, bound in FILTER_BOUNDS.items()}


def _method_width(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return max(len(owner), _count(_arg(args, kwargs, 0, "width", 0)))


def _expandtabs(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    tab = b"\t" if isinstance(owner, bytes) else "\t"
    return len(owner) + int(owner.count(tab)) * _count(_arg(args, kwargs, 0, "tabsize", 8))


def _translate(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    table = _arg(args, kwargs, 0, "table", None)
    longest = 4
    if isinstance(table, Mapping):
        longest = max((measure(v) for v in table.values()), default=1)
    return len(owner) * max(longest, 1)


def _method_join(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    items = args[0] if args else ()
    if not isinstance(items, list | tuple | str):
        raise TemplateLimit("join() in a template takes a list (use the `join` filter)")
    return measure(items) + len(owner) * len(items)


def _to_bytes(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _count(_arg(args, kwargs, 0, "length", 1))


def _int_method(owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    check_int_bits(owner.bit_length() if isinstance(owner, int) else 64, "integer method")
    return ITERATION_COST


# Methods of builtin values (str, bytes, numbers, lists, dicts) by name → their bound.
METHOD_BOUNDS: dict[str, Bound] = {
    "center": _method_width,
    "ljust": _method_width,
    "rjust": _method_width,
    "zfill": _method_width,
    "expandtabs": _expandtabs,
    "replace": lambda owner, args, kwargs: _replace(owner, args, kwargs),
    "join": _method_join,
    "translate": _translate,
    "to_bytes": _to_bytes,
    **dict.fromkeys(
        ["upper", "lower", "title", "capitalize", "casefold", "swapcase", "encode", "hex"],
        _scaled(4),
    ),
    **dict.fromkeys(
        [
            "strip",
            "lstrip",
            "rstrip",
            "removeprefix",
            "removesuffix",
            "split",
            "rsplit",
            "splitlines",
            "partition",
            "rpartition",
            "decode",
            "copy",
            "keys",
            "values",
            "items",
        ],
        _scaled(8),
    ),
    **dict.fromkeys(
        [
            "startswith",
            "endswith",
            "find",
            "rfind",
            "index",
            "rindex",
            "count",
            "get",
            "isalnum",
            "isalpha",
            "isascii",
            "isdecimal",
            "isdigit",
            "isidentifier",
            "islower",
            "isnumeric",
            "isprintable",
            "isspace",
            "istitle",
            "isupper",
            "is_integer",
        ],
        _small,
    ),
    **dict.fromkeys(["bit_length", "bit_count", "conjugate", "as_integer_ratio"], _int_method),
}
