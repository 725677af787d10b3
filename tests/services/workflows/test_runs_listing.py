"""`GET /runs`: the caller's runs across all workflows, filtered and paged, and nobody else's."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.fixtures.database import Database
from tests.services.workflows.conftest import create_workflow
from tests.services.workflows.test_runs import insert_run


def _ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _set_accepted(db: Database, run_id: uuid.UUID, when: datetime) -> None:
    db.execute("UPDATE workflow_runs SET accepted_at = $2 WHERE id = $1", run_id, when)


class TestListing:
    def test_lists_every_workflows_runs_newest_first(self, api: httpx.Client, db: Database) -> None:
        first, second = create_workflow(api, name="a"), create_workflow(api, name="b")
        runs = [insert_run(db, first), insert_run(db, second), insert_run(db, first)]
        assert _ids(api.get("/runs")) == [str(run) for run in reversed(runs)]

    def test_filters_by_status_and_workflow(self, api: httpx.Client, db: Database) -> None:
        first, second = create_workflow(api), create_workflow(api)
        failed = insert_run(db, first, status="failed")
        insert_run(db, first, status="succeeded")
        other_failed = insert_run(db, second, status="failed")
        assert _ids(api.get("/runs", params={"status": "failed"})) == [
            str(other_failed),
            str(failed),
        ]
        only_first = api.get("/runs", params={"status": "failed", "workflow_id": first["id"]})
        assert _ids(only_first) == [str(failed)]

    def test_filters_by_time_range(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        now = datetime.now(UTC)
        old, middle, new = (insert_run(db, workflow) for _ in range(3))
        _set_accepted(db, old, now - timedelta(days=3))
        _set_accepted(db, middle, now - timedelta(hours=5))
        since = (now - timedelta(days=1)).isoformat()
        until = (now - timedelta(hours=1)).isoformat()
        assert _ids(api.get("/runs", params={"since": since})) == [str(new), str(middle)]
        assert _ids(api.get("/runs", params={"since": since, "until": until})) == [str(middle)]
        # A time without a zone is UTC.
        naive = (now - timedelta(days=1)).replace(tzinfo=None).isoformat()
        assert _ids(api.get("/runs", params={"since": naive})) == [str(new), str(middle)]

    def test_pages_with_a_cursor(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        runs = [str(insert_run(db, workflow)) for _ in range(5)][::-1]
        first = api.get("/runs", params={"limit": 2}).json()
        second = api.get("/runs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        third = api.get("/runs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
        pages = [first, second, third]
        assert [item["id"] for page in pages for item in page["items"]] == runs
        assert third["next_cursor"] is None

    def test_another_user_sees_none_of_them(
        self, api: httpx.Client, other_api: httpx.Client, db: Database
    ) -> None:
        workflow = create_workflow(api)
        insert_run(db, workflow)
        assert _ids(other_api.get("/runs")) == []
        # Naming someone else's workflow lists nothing rather than telling it exists.
        assert _ids(other_api.get("/runs", params={"workflow_id": workflow["id"]})) == []

    def test_needs_a_token(self, api: httpx.Client) -> None:
        assert httpx.get(api.base_url.join("/runs"), timeout=10).status_code == 401

    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"status": "done"}, "status"),
            ({"workflow_id": "not-a-uuid"}, "workflow_id"),
            ({"since": "yesterday"}, "since"),
            ({"until": "2026-13-01"}, "until"),
            ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
            ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
            ({"limit": 0}, "limit"),
            ({"cursor": "garbage"}, "cursor"),
        ],
    )
    def test_bad_filters_are_422_naming_them(
        self, api: httpx.Client, params: dict[str, str], field: str
    ) -> None:
        response = api.get("/runs", params=params)
        assert response.status_code == 422, response.text
        assert ["query", field] in [entry["loc"][:2] for entry in response.json()["detail"]]


class TestDryRun:
    def test_create_checks_and_stores_nothing(self, api: httpx.Client) -> None:
        body = {"name": "dry", "nodes": [{"id": "n", "type": "log", "params": {"message": "x"}}]}
        response = api.post("/workflows", params={"dry_run": "true"}, json=body)
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1
        assert api.get(f"/workflows/{response.json()['id']}").status_code == 404
        assert "dry" not in [item["name"] for item in api.get("/workflows").json()["items"]]

    def test_invalid_definition_names_node_and_field(self, api: httpx.Client) -> None:
        body = {"name": "dry", "nodes": [{"id": "call", "type": "http_request", "params": {}}]}
        response = api.post("/workflows", params={"dry_run": "true"}, json=body)
        assert response.status_code == 422
        locations = [entry["loc"] for entry in response.json()["detail"]]
        assert ["body", "nodes", "call", "params", "url"] in locations

    def test_replace_tells_whether_a_version_would_be_made(self, api: httpx.Client) -> None:
        workflow = create_workflow(api, name="kept")
        same = {"name": "kept", "nodes": workflow["nodes"]}
        unchanged = api.put(f"/workflows/{workflow['id']}", params={"dry_run": "true"}, json=same)
        assert unchanged.status_code == 200
        assert unchanged.json()["version"] == 1
        changed = api.put(
            f"/workflows/{workflow['id']}",
            params={"dry_run": "true"},
            json={**same, "description": "new"},
        )
        assert (changed.json()["version"], changed.json()["description"]) == (2, "new")
        stored = api.get(f"/workflows/{workflow['id']}").json()
        assert (stored["version"], stored["description"]) == (1, "")
        versions = api.get(f"/workflows/{workflow['id']}/versions").json()["items"]
        assert [item["version"] for item in versions] == [1]
