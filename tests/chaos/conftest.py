"""Fault scenarios: run by `make chaos` (AUTOMATEOS_CHAOS=1), skipped by a plain `make test`.

Each scenario starts servers of its own, breaks them for real and prints one line of figures,
collected here and shown at the end of the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

_FIGURES = pytest.StashKey[list[str]]()
_HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIGURES] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("AUTOMATEOS_CHAOS") == "1":
        return
    # They kill servers and take minutes: `make chaos` runs them, `make test` does not.
    skip = pytest.mark.skip(reason="fault scenarios: run them with `make chaos`")
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = terminalreporter.config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("fault figures")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Keep a scenario's line of figures for the summary (and print it now, for -s)."""

    def keep(line: str) -> None:
        print(line)
        request.config.stash[_FIGURES].append(line)

    return keep
