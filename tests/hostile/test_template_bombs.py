"""Template bombs through the real services: saving one costs the workflows service nothing,
running one fails its step with a clear error and leaves the worker healthy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ApiUser
from tests.e2e.conftest import wait_for_run
from tests.fixtures.stack import Stack
from tests.shared.nodes.test_template_limits import BOMBS, LIMIT_MESSAGE


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _transform(values: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"id": "build", "type": "transform", "params": {"values": values}}]


class TestSave:
    def test_saving_every_bomb_keeps_the_workflows_service_small(
        self, user: ApiUser, stack: Stack
    ) -> None:
        pid = stack.services["workflows"].proc.pid
        before = _rss_mb(pid)
        with user.client("workflows") as api:
            for name, source in BOMBS.items():
                body = {"name": name, "nodes": _transform({"v": source, "w": f"x {source}"})}
                created = api.post("/workflows", json=body)
                assert created.status_code == 201, created.text
        # Unbounded, '%400000000d' % 1 alone kept 400 MB in the compiled-template cache.
        assert _rss_mb(pid) - before < 40


class TestRun:
    @pytest.mark.parametrize("name", ["printf-width", "tilde-doubling", "empty-nested-loops"])
    def test_a_bomb_fails_its_step_with_the_limit_named(self, user: ApiUser, name: str) -> None:
        with user.client("workflows") as api:
            created = api.post(
                "/workflows", json={"name": name, "nodes": _transform({"v": BOMBS[name]})}
            )
            assert created.status_code == 201, created.text
            started = api.post(f"/workflows/{created.json()['id']}/run", json={})
            assert started.status_code == 202, started.text
        run = wait_for_run(user, started.json()["run_id"], deadline_s=30)
        assert run["status"] == "failed", run
        step = run["steps"][0]
        assert step["status"] == "failed", step
        assert re.search(LIMIT_MESSAGE, str(step["error"])), step["error"]

    def test_integers_beyond_64_bits_are_recorded_exactly(self, user: ApiUser) -> None:
        nodes = _transform({"big": "{{ 2 ** 70 }}", "text": "n={{ 2 ** 70 }}"})
        with user.client("workflows") as api:
            created = api.post("/workflows", json={"name": "big", "nodes": nodes})
            started = api.post(f"/workflows/{created.json()['id']}/run", json={})
        run = wait_for_run(user, started.json()["run_id"], deadline_s=30)
        assert run["status"] == "succeeded", run
        output = run["steps"][0]["output"]
        assert output["text"] == f"n={2**70}"
        assert output["big"] == 2**70
