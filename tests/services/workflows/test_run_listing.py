"""`GET /runs`: the caller's runs across workflows, filtered by status, workflow and time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.fixtures.database import Database
from tests.services.workflows.conftest import create_workflow
from tests.services.workflows.test_runs import insert_run


def _ids(client: httpx.Client, **query: str | int) -> list[str]:
    response = client.get("/runs", params=query)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _accepted(db: Database, run_id: uuid.UUID, at: datetime) -> None:
    db.execute("UPDATE workflow_runs SET accepted_at = $2 WHERE id = $1", run_id, at)


class TestListing:
    def test_lists_every_workflow_newest_first_and_filters(
        self, api: httpx.Client, other_api: httpx.Client, db: Database
    ) -> None:
        first = create_workflow(api, name="first")
        second = create_workflow(api, name="second")
        theirs = create_workflow(other_api, name="theirs")
        old = insert_run(db, first, status="failed")
        middle = insert_run(db, second)
        new = insert_run(db, first)
        insert_run(db, theirs)
        day_ago = datetime.now(UTC) - timedelta(days=1)
        _accepted(db, old, day_ago)

        assert _ids(api) == [str(new), str(middle), str(old)]
        assert _ids(api, status="failed") == [str(old)]
        assert _ids(api, workflow_id=first["id"]) == [str(new), str(old)]
        assert _ids(api, workflow_id=theirs["id"]) == []  # another user's: nothing
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert _ids(api, since=hour_ago) == [str(new), str(middle)]
        assert _ids(api, until=hour_ago) == [str(old)]
        # A time without an offset is UTC.
        naive = (day_ago + timedelta(minutes=1)).replace(tzinfo=None).isoformat()
        assert _ids(api, until=naive) == [str(old)]

    def test_pages_by_cursor(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        made = [str(insert_run(db, workflow)) for _ in range(5)]
        page = api.get("/runs", params={"limit": 2}).json()
        seen = [item["id"] for item in page["items"]]
        for _ in range(5):
            if not page["next_cursor"]:
                break
            page = api.get("/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
            seen += [item["id"] for item in page["items"]]
        assert seen == made[::-1]

    def test_bad_values_are_422_naming_the_parameter(self, api: httpx.Client) -> None:
        for query, name in (
            ({"status": "sleeping"}, "status"),
            ({"since": "yesterday"}, "since"),
            ({"workflow_id": "nope"}, "workflow_id"),
            ({"limit": 0}, "limit"),
            ({"cursor": "not-a-cursor"}, "cursor"),
        ):
            response = api.get("/runs", params=query)
            assert response.status_code == 422, query
            assert name in response.text, query

    def test_needs_a_token(self, api: httpx.Client) -> None:
        assert httpx.get(f"{api.base_url}/runs").status_code == 401
