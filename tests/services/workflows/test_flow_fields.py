"""The flow-control fields of a workflow over HTTP: stored, returned, and a 422 naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.services.workflows.conftest import LOG_NODE

FLOW = {
    "concurrency": {"limit": 2, "key": "{{ trigger.body.customer }}"},
    "throttle": {"limit": 10, "period_s": 60},
    "debounce": {"period_s": 5, "key": "{{ trigger.body.id }}", "max_wait_s": 30},
    "priority": "high",
}


def _create(api: httpx.Client, **extra: Any) -> httpx.Response:
    return api.post("/workflows", json={"name": "flow", "nodes": [LOG_NODE], **extra})


def test_flow_fields_are_stored_and_returned(api: httpx.Client) -> None:
    created = _create(api, **FLOW)
    assert created.status_code == 201, created.text
    body = api.get(f"/workflows/{created.json()['id']}").json()
    # An omitted key is returned as null (one key for the whole workflow).
    assert {name: body[name] for name in FLOW} == {
        **FLOW,
        "throttle": {**FLOW["throttle"], "key": None},
    }
    # PATCH changes one field and leaves the others; null removes one.
    patched = api.patch(
        f"/workflows/{body['id']}", json={"priority": "low", "throttle": None}
    ).json()
    assert patched["priority"] == "low"
    assert patched["throttle"] is None
    assert patched["concurrency"] == FLOW["concurrency"]


def test_a_workflow_without_them_has_the_defaults(api: httpx.Client) -> None:
    body = _create(api).json()
    assert (body["concurrency"], body["throttle"], body["debounce"]) == (None, None, None)
    assert body["priority"] == "normal"


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"concurrency": {"limit": 0}}, ["body", "concurrency", "limit"]),
        (
            {"concurrency": {"limit": 1, "key": "{{ trigger.body. }}"}},
            ["body", "concurrency", "key"],
        ),
        ({"concurrency": {"limit": 1, "size": 3}}, ["body", "concurrency", "size"]),
        ({"throttle": {"limit": 5, "period_s": -1}}, ["body", "throttle", "period_s"]),
        (
            {"throttle": {"limit": 5, "period_s": 1, "key": "{% for %}"}},
            ["body", "throttle", "key"],
        ),
        ({"debounce": {"period_s": 10, "max_wait_s": 5}}, ["body", "debounce", "max_wait_s"]),
        ({"priority": "urgent"}, ["body", "priority"]),
    ],
)
def test_invalid_values_are_a_422_naming_the_field(
    api: httpx.Client, extra: dict[str, Any], where: list[str]
) -> None:
    response = _create(api, **extra)
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert where in locations, locations
