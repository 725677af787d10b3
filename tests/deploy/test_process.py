"""The chart's wiring matches the code: its rendered workloads, run as local processes.

Renders the chart (generated secrets and signing key, production mode, Ingress on), runs the
migration Job's command, starts every Deployment's command with its rendered env and ports, waits
for the rendered readiness probes, then registers, creates a workflow and calls its webhook through
the Ingress routes until the run succeeds. See chart_run.py for what is adapted to run locally.
"""

from __future__ import annotations

import httpx
import pytest

from tests.deploy.chart import CHART, missing_services, render
from tests.deploy.chart_run import build_plan, local_starter, push_webhook, route, running_plan

pytestmark = pytest.mark.slow

VALUES = {
    "ingress": {
        "enabled": True,
        "hosts": ["automate.example.com"],
        "tls": [{"secretName": "automate-tls", "hosts": ["automate.example.com"]}],
    }
}


def test_rendered_workloads_run_and_a_webhook_goes_through(helm, databases, tmp_path) -> None:
    if missing := missing_services():
        pytest.skip(f"services not written yet: {missing}")
    manifest = render(helm, CHART / "ci" / "default-values.yaml", values=VALUES)
    plan = build_plan(manifest, *databases)
    with running_plan(plan, local_starter(tmp_path), tmp_path) as running:
        for service in running.values():
            path, port = service.launch.liveness
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        with pytest.raises(LookupError):
            route(plan, "/internal/hooks/0123")
        run = push_webhook(plan)
    assert [step["node_id"] for step in run["steps"]] == ["hello"]
    assert run["steps"][0]["status"] == "succeeded"
