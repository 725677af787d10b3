"""The workflows both systems run, written once per system so they do the same work.

Every webhook carries bench.ingest.BODY (an order of amount 150.5), so each filter passes and
every run goes through every node. The "slow API" is a local server answering in 200 ms
(bench.slow_api), which the http_request node and n8n's HTTP Request node both POST to.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Workload:
    """One workflow shape and how many webhooks a throughput round sends it."""

    name: str
    title: str
    runs: int
    connections: int
    # Longest a round may take before it is reported unfinished (it never hangs the bench).
    deadline_s: float


WORKLOADS = (
    Workload("cpu", "webhook → transform → filter", 500, 32, 120),
    # 1,000, not 200: at 2 x 32 slots a 200-run round is 4 waves of calls, so even a worker
    # of no cost could not pass 0.78 x its slot ceiling (issue 15's target is 0.8x); the
    # first and last waves weigh less in 16.
    Workload("io", "webhook → http_request (200 ms API) → transform", 1000, 32, 120),
    Workload("delay", "webhook → delay 5 s → transform", 40, 8, 150),
    Workload("mix", "webhook → transform → filter → http_request (200 ms API)", 200, 32, 120),
)
INGEST = Workload("ingest", "webhook → transform → filter (ingest rounds only)", 0, 0, 0)
BY_NAME = {w.name: w for w in (*WORKLOADS, INGEST)}


# --- AutomateOS -------------------------------------------------------------------------------

_TRANSFORM = {
    "id": "shape",
    "type": "transform",
    "params": {
        "values": {
            "order": "{{ trigger.body.data.order }}",
            "amount": "{{ trigger.body.data.amount }}",
            "customer": "{{ trigger.body.data.customer }}",
        }
    },
}
_FILTER = {
    "id": "big",
    "type": "filter",
    "params": {"all": [{"left": "{{ steps.shape.amount }}", "op": "gt", "right": 100}]},
}


def _post(slow_url: str) -> dict[str, Any]:
    return {
        "id": "call",
        "type": "http_request",
        "params": {
            "method": "POST",
            "url": slow_url,
            "json": {"order": "{{ trigger.body.data.order }}"},
        },
        "timeout_s": 10,
    }


def ours(name: str, slow_url: str) -> list[dict[str, Any]]:
    """The node list of workload `name` for AutomateOS."""
    after_call = {
        "id": "shape",
        "type": "transform",
        "params": {
            "values": {
                "order": "{{ trigger.body.data.order }}",
                "status": "{{ steps.call.status }}",
            }
        },
    }
    return {
        "cpu": [_TRANSFORM, _FILTER],
        "ingest": [_TRANSFORM, _FILTER],
        "io": [_post(slow_url), after_call],
        "delay": [{"id": "wait", "type": "delay", "params": {"seconds": 5}}, _TRANSFORM],
        "mix": [_TRANSFORM, _FILTER, _post(slow_url)],
    }[name]


# --- n8n --------------------------------------------------------------------------------------


def _node(name: str, kind: str, version: float, x: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{name}/{kind}")),
        "name": name,
        "type": f"n8n-nodes-base.{kind}",
        "typeVersion": version,
        "position": [x, 0],
        "parameters": params,
    }


def _n8n_set(values: dict[str, str]) -> dict[str, Any]:
    return {
        "assignments": {
            "assignments": [
                {"id": f"a{i}", "name": key, "value": value, "type": "string"}
                for i, (key, value) in enumerate(values.items())
            ]
        },
        "options": {},
    }


def _n8n_filter() -> dict[str, Any]:
    return {
        "conditions": {
            "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "loose"},
            "conditions": [
                {
                    "id": "c0",
                    "leftValue": "={{ $json.amount }}",
                    "rightValue": 100,
                    "operator": {"type": "number", "operation": "gt"},
                }
            ],
            "combinator": "and",
        },
        "looseTypeValidation": True,
        "options": {},
    }


def _n8n_post(slow_url: str) -> dict[str, Any]:
    return {
        "method": "POST",
        "url": slow_url,
        "sendBody": True,
        "specifyBody": "json",
        "jsonBody": '={{ JSON.stringify({"order": $("Webhook").item.json.body.data.order}) }}',
        "options": {"timeout": 10000},
    }


_N8N_TRANSFORM = {
    "order": "={{ $json.body.data.order }}",
    "amount": "={{ $json.body.data.amount }}",
    "customer": "={{ $json.body.data.customer }}",
}


def n8n(name: str, slow_url: str, workflow_id: str, path: str) -> dict[str, Any]:
    """Workload `name` as an n8n workflow for `n8n import:workflow` (Webhook answers at once)."""
    webhook = _node("Webhook", "webhook", 2, 0, {"httpMethod": "POST", "path": path, "options": {}})
    webhook["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{workflow_id}"))
    shape = _node("Transform", "set", 3.4, 200, _n8n_set(_N8N_TRANSFORM))
    big = _node("Filter", "filter", 2, 400, _n8n_filter())
    call = _node("Call", "httpRequest", 4.2, 200, _n8n_post(slow_url))
    after_call = _node(
        "Transform",
        "set",
        3.4,
        400,
        _n8n_set({"order": '={{ $("Webhook").item.json.body.data.order }}', "status": "ok"}),
    )
    wait = _node("Wait", "wait", 1.1, 200, {"amount": 5, "unit": "seconds"})
    wait["webhookId"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{workflow_id}/wait"))
    delayed_shape = {**shape, "position": [400, 0]}
    chains = {
        "cpu": [webhook, shape, big],
        "ingest": [webhook, shape, big],
        "io": [webhook, call, after_call],
        "delay": [webhook, wait, delayed_shape],
        "mix": [webhook, shape, big, {**call, "position": [600, 0]}],
    }
    chain = chains[name]
    connections = {
        a["name"]: {"main": [[{"node": b["name"], "type": "main", "index": 0}]]}
        for a, b in itertools.pairwise(chain)
    }
    return {
        "id": workflow_id,
        "name": f"bench {name}",
        "nodes": chain,
        "connections": connections,
        "active": False,
        "settings": {"executionOrder": "v1"},
    }
