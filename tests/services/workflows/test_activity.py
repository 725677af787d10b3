"""`GET /workflows/activity` (the console's list page) and `GET /workflows/{id}/versions`."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.ids import uuid7_floor
from tests.fixtures.database import Database
from tests.services.workflows.conftest import create_workflow


def _run_at(db: Database, workflow: dict[str, Any], status: str, at: datetime) -> uuid.UUID:
    """Record a run accepted at `at` with a UUIDv7 of that moment, as ingest would make it."""
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    run_id = uuid.UUID(int=uuid7_floor(int(at.timestamp() * 1000)).int | random_bits)
    db.execute(
        "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status, trigger,"
        " attempt, accepted_at) SELECT $1, id, owner_id, 1, $3, '{}'::jsonb, 1, $4"
        " FROM workflows WHERE id = $2",
        run_id,
        uuid.UUID(workflow["id"]),
        status,
        at,
    )
    return run_id


def _activity(api: httpx.Client, *ids: str) -> httpx.Response:
    return api.get("/workflows/activity", params=[("workflow_id", i) for i in ids])


class TestActivity:
    def test_counts_the_last_24_hours_by_status_and_names_the_newest_run(
        self, api: httpx.Client, db: Database
    ) -> None:
        workflow = create_workflow(api)
        now = datetime.now(UTC)
        _run_at(db, workflow, "succeeded", now - timedelta(days=2))  # outside the window
        _run_at(db, workflow, "succeeded", now - timedelta(hours=23))
        _run_at(db, workflow, "failed", now - timedelta(hours=2))
        newest = _run_at(db, workflow, "failed", now - timedelta(minutes=1))

        response = _activity(api, workflow["id"])

        assert response.status_code == 200, response.text
        [item] = response.json()["items"]
        assert item["runs_by_status"] == {"succeeded": 1, "failed": 2}
        assert item["last_run"]["id"] == str(newest)
        assert item["last_run"]["status"] == "failed"

    def test_a_workflow_without_runs_has_no_last_run_and_no_counts(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        [item] = _activity(api, workflow["id"]).json()["items"]
        assert item == {"workflow_id": workflow["id"], "last_run": None, "runs_by_status": {}}

    def test_keeps_the_order_asked_and_leaves_out_anyone_elses_workflow(
        self, api: httpx.Client, other_api: httpx.Client, db: Database
    ) -> None:
        first, second = create_workflow(api), create_workflow(api)
        theirs = create_workflow(other_api)
        _run_at(db, theirs, "succeeded", datetime.now(UTC))

        response = _activity(api, second["id"], theirs["id"], first["id"], str(uuid.uuid4()))

        assert [i["workflow_id"] for i in response.json()["items"]] == [second["id"], first["id"]]

    def test_a_run_older_than_the_window_is_still_the_last_run(
        self, api: httpx.Client, db: Database
    ) -> None:
        workflow = create_workflow(api)
        old = _run_at(db, workflow, "cancelled", datetime.now(UTC) - timedelta(days=3))
        [item] = _activity(api, workflow["id"]).json()["items"]
        assert item["last_run"]["id"] == str(old)
        assert item["runs_by_status"] == {}

    def test_rejects_no_ids_too_many_ids_and_malformed_ids(self, api: httpx.Client) -> None:
        assert api.get("/workflows/activity").status_code == 422
        too_many = [str(uuid.uuid4()) for _ in range(101)]
        assert _activity(api, *too_many).status_code == 422
        malformed = _activity(api, "not-a-uuid")
        assert malformed.status_code == 422
        assert "workflow_id" in malformed.text

    def test_needs_a_token(self, api: httpx.Client) -> None:
        response = httpx.get(f"{api.base_url}/workflows/activity?workflow_id={uuid.uuid4()}")
        assert response.status_code == 401


class TestVersions:
    def test_lists_every_version_newest_first_with_its_nodes(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        renamed = {"id": "renamed", "type": "log", "params": {"message": "v2"}}
        changed = api.patch(f"/workflows/{workflow['id']}", json={"nodes": [renamed]})
        assert changed.status_code == 200, changed.text

        page = api.get(f"/workflows/{workflow['id']}/versions").json()

        assert [v["version"] for v in page["items"]] == [2, 1]
        assert page["items"][0]["nodes"][0]["id"] == "renamed"
        assert page["items"][1]["nodes"] == workflow["nodes"]
        assert page["next_before"] is None

    def test_pages_with_before(self, api: httpx.Client) -> None:
        workflow = create_workflow(api)
        for name in ("b", "c"):
            assert api.patch(f"/workflows/{workflow['id']}", json={"name": name}).is_success
        path = f"/workflows/{workflow['id']}/versions"

        first = api.get(path, params={"limit": 2}).json()
        rest = api.get(path, params={"limit": 2, "before": first["next_before"]}).json()

        assert [v["version"] for v in first["items"]] == [3, 2]
        assert [v["version"] for v in rest["items"]] == [1]
        assert rest["next_before"] is None

    def test_someone_elses_workflow_is_not_found(
        self, api: httpx.Client, other_api: httpx.Client
    ) -> None:
        workflow = create_workflow(other_api)
        assert api.get(f"/workflows/{workflow['id']}/versions").status_code == 404
