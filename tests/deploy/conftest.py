"""Fixtures for the chart tests: helm binaries (skip when absent) and rendered value sets."""

from __future__ import annotations

import pytest

from tests.deploy.chart import CI_VALUES, Manifest, helm_binary, render


@pytest.fixture(scope="session")
def helm() -> str:
    found = helm_binary(3)
    if found is None:
        pytest.skip("no helm 3 binary: run `make chart-test` (fetches it into .tools/)")
    return found


@pytest.fixture(scope="session")
def helm4() -> str:
    found = helm_binary(4)
    if found is None:
        pytest.skip("no helm 4 binary: run `make chart-test` (fetches it into .tools/)")
    return found


@pytest.fixture(params=CI_VALUES, ids=lambda p: p.stem)
def ci_values(request: pytest.FixtureRequest):
    """Each value set of deploy/helm/automateos/ci/ (the chart-testing convention)."""
    return request.param


@pytest.fixture
def manifest(helm: str, ci_values) -> Manifest:
    return render(helm, ci_values)
