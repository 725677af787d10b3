"""The credential values a step opened, and the scrubbing of every message the step makes.

A step that renders credentials registers their values (and the encodings the engine gives
them) in its scope. While the step runs, every log record of the worker process is scrubbed of
them (the filter sits on the root handlers, so a record from the engine, a node, httpx or a
traceback is covered alike), and the engine scrubs the step's error, the run's error and what
it puts on spans with `scrub_message`. The scope is task-local: concurrent runs never mix.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from services.worker.engine.credentials import scrub

_SCOPE: ContextVar[dict[str, str] | None] = ContextVar("automateos_step_secrets", default=None)


@contextmanager
def step_scope() -> Iterator[dict[str, str]]:
    """A fresh scope for one step: add the values it opens to the dict it yields."""
    values: dict[str, str] = {}
    token = _SCOPE.set(values)
    try:
        yield values
    finally:
        _SCOPE.reset(token)


def current() -> Mapping[str, str]:
    return _SCOPE.get() or {}


def scrub_message(message: str) -> str:
    """`message` without the current step's credential values."""
    values = current()
    return scrub(message, values) if values else message


class _ScrubLogs(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        values = current()
        if values:
            record.msg = scrub(record.getMessage(), values)
            record.args = None
            if record.exc_info:
                # A traceback quotes exception messages: only its scrubbed text goes on.
                text = logging.Formatter().formatException(record.exc_info)
                record.exc_text = scrub(text, values)
                record.exc_info = None
            elif record.exc_text:
                record.exc_text = scrub(record.exc_text, values)
        return True


_FILTER = _ScrubLogs()


def install_log_scrubbing() -> None:
    """Put the filter on every handler of the root logger (idempotent; after logging is set
    up, which the worker does first)."""
    for handler in logging.getLogger().handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def register(values: Mapping[str, str]) -> None:
    """Add the values a step opened to its scope (a no-op outside a step)."""
    scope = _SCOPE.get()
    if scope is not None:
        scope.update(values)
