"""The `metrics` marker: tests that need a Prometheus binary and the whole stack.

`make test` runs them when Prometheus is installed and skips them otherwise. `make metrics-test`
sets AUTOMATEOS_METRICS_TEST=1, which turns every such skip into a failure: that target exists
to prove the metrics, so it must never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRED = os.environ.get("AUTOMATEOS_METRICS_TEST") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "metrics: needs a Prometheus binary and runs the whole stack (make metrics-test)"
    )


def unavailable(reason: str) -> None:
    """Skip, or fail under `make metrics-test`."""
    if REQUIRED:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    found = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if not found:
        unavailable(
            "no prometheus binary: `apt-get install --no-install-recommends prometheus` "
            "(make metrics-test installs it)"
        )
    assert found is not None
    return found
