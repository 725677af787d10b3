"""A workflow's webhook `rate_limit`: validated at save (422 naming the field), returned by the
API, and mirrored into the routing record ingest applies it from."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
import redis

from tests.services.workflows.conftest import create_workflow, record_key


def test_is_stored_returned_and_mirrored(api: httpx.Client, rds: redis.Redis) -> None:
    workflow = create_workflow(api, rate_limit={"per_s": 2.5, "burst": 10})
    assert workflow["rate_limit"] == {"per_s": 2.5, "burst": 10}
    assert api.get(f"/workflows/{workflow['id']}").json()["rate_limit"] == workflow["rate_limit"]
    raw = rds.get(record_key(workflow))
    assert raw is not None
    assert orjson.loads(raw)["rate_limit"] == {"per_s": 2.5, "burst": 10}

    changed = api.patch(f"/workflows/{workflow['id']}", json={"rate_limit": None})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rate_limit"] is None
    raw = rds.get(record_key(workflow))
    assert raw is not None
    # Without one, the record carries none: ingest applies its default.
    assert "rate_limit" not in orjson.loads(raw)


@pytest.mark.parametrize(
    ("rate_limit", "field"),
    [
        ({"per_s": 0, "burst": 1}, "per_s"),
        ({"per_s": -1, "burst": 1}, "per_s"),
        ({"per_s": 1, "burst": 0}, "burst"),
        ({"per_s": 1}, "burst"),
        ({"per_s": 1, "burst": 1, "per_minute": 5}, "per_minute"),
    ],
)
def test_bad_values_are_422_naming_the_field(
    api: httpx.Client, rate_limit: dict[str, Any], field: str
) -> None:
    response = api.post("/workflows", json={"name": "wf", "nodes": [], "rate_limit": rate_limit})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "rate_limit", field]
