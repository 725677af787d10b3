"""Fixtures for the chart tests: helm binaries (skip when absent) and rendered value sets."""

from __future__ import annotations

import secrets

import pytest

from tests.deploy.chart import CI_VALUES, Manifest, helm_binary, render


@pytest.fixture(scope="session")
def helm() -> str:
    pytest.importorskip("yaml", reason="PyYAML not installed: run `make chart-test`")
    found = helm_binary(3)
    if found is None:
        pytest.skip("no helm 3 binary: run `make chart-test` (fetches it into .tools/)")
    return found


@pytest.fixture(scope="session")
def helm4() -> str:
    pytest.importorskip("yaml", reason="PyYAML not installed: run `make chart-test`")
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


@pytest.fixture
def databases(infra) -> tuple[str, str]:
    """A fresh database (the migration Job must create the schema) and a Redis db of our own."""
    if infra.postgres is not None:
        database_url = infra.postgres.create_database(f"chart_{secrets.token_hex(4)}")
    else:
        database_url = infra.database_url
    redis_url = infra.redis_url.rsplit("/", 1)[0] + "/7"
    return database_url, redis_url
