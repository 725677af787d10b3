"""Schedule triggers and retention settings in the workflow API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.services.workflows.conftest import LOG_NODE


def create(api: httpx.Client, **fields: Any) -> httpx.Response:
    return api.post("/workflows", json={"name": "clock", "nodes": [LOG_NODE], **fields})


class TestScheduleTrigger:
    def test_shows_the_trigger_and_the_next_tick(self, api: httpx.Client) -> None:
        trigger = {"type": "schedule", "cron": "*/5 * * * *", "timezone": "Europe/Berlin"}
        response = create(api, trigger=trigger)
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["trigger"] == {**trigger, "every": None}
        next_run = datetime.fromisoformat(body["next_run_at"])
        assert datetime.now(UTC) < next_run <= datetime.now(UTC) + timedelta(minutes=5)
        assert next_run.minute % 5 == 0
        # The webhook keeps working alongside the schedule.
        assert body["webhook_url"]
        again = api.get(f"/workflows/{body['id']}").json()
        assert again["next_run_at"] == body["next_run_at"]

    def test_deactivating_clears_the_next_tick_and_activating_sets_it(
        self, api: httpx.Client
    ) -> None:
        workflow = create(api, trigger={"type": "schedule", "every": "30s"}).json()
        off = api.patch(f"/workflows/{workflow['id']}", json={"active": False}).json()
        assert off["next_run_at"] is None
        on = api.patch(f"/workflows/{workflow['id']}", json={"active": True}).json()
        assert on["next_run_at"] is not None

    def test_a_webhook_trigger_has_no_next_tick(self, api: httpx.Client) -> None:
        assert create(api).json()["next_run_at"] is None

    @pytest.mark.parametrize(
        "trigger",
        [
            {"type": "schedule"},
            {"type": "schedule", "cron": "* * * * *", "every": "1s"},
            {"type": "schedule", "cron": "every monday"},
            {"type": "schedule", "cron": "* * * * *", "timezone": "Mars/Base"},
            {"type": "schedule", "every": "0s"},
            {"type": "schedule", "every": "10s", "timezone": "UTC"},
            {"type": "schedule", "every": "10s", "signature": {"scheme": "github"}},
            {"type": "webhook", "every": "10s"},
        ],
    )
    def test_bad_schedules_are_422_naming_the_trigger(
        self, api: httpx.Client, trigger: dict[str, Any]
    ) -> None:
        response = create(api, trigger=trigger)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][:2] == ["body", "trigger"]


class TestRetention:
    def test_overrides_are_stored_and_shown(self, api: httpx.Client) -> None:
        retention = {"days": 3, "max_runs": 100, "keep_details": "failed"}
        body = create(api, retention=retention).json()
        assert body["retention"] == retention
        reset = api.patch(f"/workflows/{body['id']}", json={"retention": None}).json()
        assert reset["retention"] == {"days": None, "max_runs": None, "keep_details": "all"}

    @pytest.mark.parametrize(
        "retention", [{"days": 0}, {"max_runs": 0}, {"keep_details": "some"}, {"forever": True}]
    )
    def test_bad_retention_is_422(self, api: httpx.Client, retention: dict[str, Any]) -> None:
        assert create(api, retention=retention).status_code == 422
