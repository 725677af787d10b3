"""How much a template may build: the per-render budget and the size estimates behind it.

Every operation of the template sandbox that can allocate (operators, method calls, filters,
output, loop iterations) asks `charge()` for the bytes it is about to create *before* it creates
them, so a template is refused on the first step past a limit, never after it already took the
memory. Three limits hold for one render (all the templates in one node's params):

- no single value (string, list, rendered output) over `MAX_VALUE_BYTES`;
- no more than `MAX_WORK_BYTES` created in total (loop iterations count `ITERATION_COST`), which
  also bounds the CPU a render can burn;
- no longer than `MAX_RENDER_SECONDS` of wall time, checked at every charge.

A caller that shares its thread with other work (the worker's event loop) may also give a render
a *slice*: past it the render stops with `RenderSliceExceeded`, which is not a template error but
a signal to finish the render somewhere else (services/worker/engine/fairness.py). Rendering is
pure, so starting it again elsewhere gives the same result.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.runtime import Undefined

__all__ = [
    "CALL_COST",
    "ITERATION_COST",
    "MAX_INT_BITS",
    "MAX_VALUE_BYTES",
    "MAX_WORK_BYTES",
    "Budget",
    "RenderSliceExceeded",
    "TemplateLimit",
    "charge",
    "check_int_bits",
    "check_value",
    "measure",
    "printf_bound",
    "render_budget",
    "spec_bound",
]

# A trigger body may be 10 MiB, and `{{ trigger.body | tojson }}` must still work.
MAX_VALUE_BYTES = 16 * 1024 * 1024
MAX_WORK_BYTES = 64 * 1024 * 1024
MAX_RENDER_SECONDS = 2.0
# Python refuses to print integers longer than 4,300 digits (about 14,000 bits) anyway.
MAX_INT_BITS = 14_000
# What one loop iteration costs against the work budget: a million iterations per render.
ITERATION_COST = 64
# A call (macro, `loop()`, global function) does more: about 130,000 of them per render.
CALL_COST = 512


class TemplateLimit(SecurityError):
    """A template tried to build more than its limits allow; the message says what and how much."""


class RenderSliceExceeded(Exception):
    """The render ran past the slice its caller gave it; nothing of it is kept."""


class Budget:
    """The work and time one render may spend."""

    __slots__ = ("clock", "deadline", "left", "slice_end")

    def __init__(
        self,
        work_bytes: int = MAX_WORK_BYTES,
        seconds: float = MAX_RENDER_SECONDS,
        slice_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.clock = clock
        started = clock()
        self.left = work_bytes
        self.deadline = started + seconds
        self.slice_end = math.inf if slice_s is None else started + slice_s

    def charge(self, size: int, what: str) -> None:
        """Account for `size` bytes about to be created by `what`; raise past a limit."""
        if size > MAX_VALUE_BYTES:
            raise TemplateLimit(f"{what} would build {size:,} bytes (limit {MAX_VALUE_BYTES:,})")
        self.left -= size
        if self.left < 0:
            raise TemplateLimit(
                f"template builds more than {MAX_WORK_BYTES:,} bytes in total (at {what})"
            )
        current = self.clock()
        if current > self.slice_end:
            raise RenderSliceExceeded(what)
        if current > self.deadline:
            raise TemplateLimit(f"template ran longer than {MAX_RENDER_SECONDS:g} s (at {what})")


_current: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


@contextmanager
def render_budget(
    slice_s: float | None = None, clock: Callable[[], float] = time.monotonic
) -> Iterator[Budget]:
    """A fresh budget for the render inside the block (renders never share one).

    The time limit is wall time by default; a render process that runs at a low priority
    counts its own CPU time instead (`time.process_time`), so a busy machine does not fail it.
    """
    budget = Budget(slice_s=slice_s, clock=clock)
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def charge(size: int, what: str) -> None:
    """Charge the current render's budget (outside a render, only the per-value limit holds)."""
    budget = _current.get()
    if budget is not None:
        budget.charge(size, what)
    elif size > MAX_VALUE_BYTES:
        raise TemplateLimit(f"{what} would build {size:,} bytes (limit {MAX_VALUE_BYTES:,})")


def measure(value: Any, cap: int = MAX_VALUE_BYTES) -> int:
    """About how many bytes `value` takes as text (its JSON), counting shared references every
    time they appear; stops early once past `cap` (returns a number > cap then)."""
    kind = type(value)  # the common cases first: this runs for every printed value
    if kind is str:
        return len(value) + 2
    if kind is int:
        return value.bit_length() // 3 + 2  # type: ignore[no-any-return]
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item) + 2
        elif isinstance(item, bool) or item is None or isinstance(item, Undefined):
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, float):
            total += 24
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            total += 2 + len(item)
            stack.extend(item)
        else:
            total += 64  # ranges, macros, loop objects: their text is short
        if total > cap:
            return total
    return total


def check_value(value: Any, what: str) -> int:
    """Charge for `value`'s size as text (for output or conversion to a string); return it."""
    size = measure(value)
    charge(size, what)
    return size


def check_int_bits(bits: int, what: str) -> None:
    """Refuse an integer result wider than `MAX_INT_BITS` before computing it."""
    if bits > MAX_INT_BITS:
        raise TemplateLimit(f"{what} would have {bits:,} bits (limit {MAX_INT_BITS:,})")
    charge(bits // 8 + 1, what)


# printf conversions: `%[(key)][flags][width][.precision][length]type`.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?(.)")


def _number(text: str | None, star_values: Iterator[int]) -> int:
    if not text:
        return 0
    if text == "*":
        return next(star_values, 0)
    # Longer than the limit's digits means larger than the limit: no need to parse it.
    return int(text) if len(text) <= 12 else MAX_VALUE_BYTES + 1


def printf_bound(fmt: str, args: Any) -> int:
    """An upper bound of the size of `fmt % args`, computed without formatting."""
    stars = (
        abs(item) for item in (args if isinstance(args, tuple) else (args,)) if type(item) is int
    )
    conversions = 0
    padding = 0
    for match in _PRINTF.finditer(fmt):
        conversions += 1
        padding += _number(match.group(1), stars) + _number(match.group(2), stars)
    arguments = measure(args)
    if isinstance(args, Mapping):
        # `%(a)s%(a)s` prints one value per conversion: count the mapping for each.
        arguments = arguments * max(conversions, 1)
    return len(fmt) + padding + arguments


# Widths and precisions in a `str.format` spec (`{:>1000}`, `{:.500f}`).
_SPEC_NUMBERS = re.compile(r"\d+")


def spec_bound(value: Any, spec: str) -> int:
    """An upper bound of the size of `format(value, spec)`."""
    numbers = [int(n) if len(n) <= 12 else MAX_VALUE_BYTES + 1 for n in _SPEC_NUMBERS.findall(spec)]
    size = measure(value)
    if isinstance(value, float) and not math.isnan(value):
        size += 330  # `{:f}` of 1e308 prints every digit
    return size + sum(numbers)
