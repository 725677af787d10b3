"""The benchmark harness's own logic (fast; the benchmark itself runs only in `make bench`)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from typing import Any

import pytest

from bench import workloads
from bench.memory import Sampler, descendants, rss_mb
from bench.phases import median_ratio, percentile
from bench.report import targets
from shared.nodes.loader import load_registry

SLOW = "http://127.0.0.1:9/orders"


@pytest.mark.parametrize("name", ["ingest", *(w.name for w in workloads.WORKLOADS)])
def test_our_workflows_are_valid_node_lists(name: str) -> None:
    registry = load_registry()
    nodes = workloads.ours(name, SLOW)
    assert nodes, name
    for node in nodes:
        spec = registry.get(node["type"])
        assert spec is not None, node["type"]
        spec.params_model.model_validate(node["params"])


@pytest.mark.parametrize("name", ["ingest", *(w.name for w in workloads.WORKLOADS)])
def test_n8n_workflows_chain_every_node_from_the_webhook(name: str) -> None:
    flow = workloads.n8n(name, SLOW, "benchid000000000", f"bench-{name}")
    nodes = flow["nodes"]
    names = [n["name"] for n in nodes]
    assert len(set(names)) == len(names)
    webhook = nodes[0]
    assert webhook["type"] == "n8n-nodes-base.webhook"
    assert webhook["parameters"]["path"] == f"bench-{name}"
    # No responseMode: n8n's default answers on receipt, like our 202.
    assert "responseMode" not in webhook["parameters"]
    # A straight chain: each node feeds the next, the last feeds nothing.
    for current, following in itertools.pairwise(names):
        assert flow["connections"][current]["main"][0][0]["node"] == following
    assert names[-1] not in flow["connections"]
    # Both systems do the same work: same number of nodes after the trigger.
    assert len(nodes) - 1 == len(workloads.ours(name, SLOW))


def test_percentile_and_ratio() -> None:
    assert percentile([], 0.5) is None
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51
    assert percentile(values, 0.99) == 100
    assert median_ratio([10, 20, 30], [5, 5, 10]) == 3
    assert median_ratio([10], [0]) is None


def _results(ours_rps: float, base_rps: float, peer_rps: float, p99: float) -> dict[str, Any]:
    def rounds(key: str, values: list[float]) -> list[dict[str, float]]:
        return [{key: v} for v in values]

    return {
        "ingest": {
            "32": {
                "AutomateOS": [{"rps": ours_rps, "p99_ms": p99}] * 2,
                "LPUSH baseline": rounds("rps", [base_rps, base_rps]),
                "n8n": rounds("rps", [peer_rps, peer_rps]),
            }
        },
        "workloads": {
            "cpu": {
                "AutomateOS": rounds("runs_per_s", [300, 330]),
                "n8n": rounds("runs_per_s", [100, 100]),
            },
            "io": {
                "AutomateOS": rounds("runs_per_s", [100, 100]),
                "n8n": rounds("runs_per_s", [100, 100]),
            },
            "delay": {"AutomateOS": [{"makespan_s": 6.0}], "n8n": [{"makespan_s": 5.2}]},
        },
        "memory_peak": {"AutomateOS": {"ingest": 80, "auth": 130, "worker child 1 (x)": 90}},
        "scaling": {
            "ours": [{"processes": 1, "runs_per_s": 100}, {"processes": 2, "runs_per_s": 160}]
        },
    }


def _met(results: dict[str, Any], fragment: str) -> bool | None:
    found = [met for target, _, met in targets(results) if fragment in target]
    assert len(found) == 1, fragment
    return found[0]


def test_targets_say_met_or_missed_from_the_numbers() -> None:
    good = _results(5000, 6000, 200, 40)
    assert _met(good, "LPUSH baseline") is True
    assert _met(good, "20 × n8n") is True  # noqa: RUF001
    assert _met(good, "p99 ≤ 50 ms") is True
    assert _met(good, "cpu runs/s") is True
    assert _met(good, "io runs/s") is False
    assert _met(good, "delay 5 s") is True
    assert _met(good, "each service") is False  # auth at 130 MB
    assert _met(good, "a worker process") is True
    assert _met(good, "1 → 2 worker") is False  # 1.6 times
    slow = _results(4000, 6000, 300, 80)
    assert _met(slow, "LPUSH baseline") is False
    assert _met(slow, "p99 ≤ 50 ms") is False


def test_sampler_sees_a_process_and_its_children() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)']); "
            "time.sleep(30)",
        ]
    )
    try:
        deadline = time.monotonic() + 10
        while not descendants(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(descendants(parent.pid)) == 1
        sampler = Sampler()
        sampler.watch("sys", "main", parent.pid)
        snapshot = sampler.snapshot("sys")
        assert snapshot["main"] > 1
        assert any(label.startswith("main child 1") for label in snapshot)
        summed = Sampler()
        summed.watch("sys", "tree", parent.pid, summed=True)
        # PSS splits the pages both interpreters share: more than nothing, less than RSS twice.
        rss_both = sum(snapshot.values())
        assert 0 < summed.snapshot("sys")["tree"] < rss_both
    finally:
        for pid in descendants(parent.pid):
            subprocess.run(["kill", str(pid)], check=False)
        parent.kill()
        parent.wait(timeout=10)
    assert rss_mb(parent.pid) == 0
