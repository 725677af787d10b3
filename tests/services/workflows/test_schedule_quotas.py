"""Schedule quotas per user and never-firing cron expressions: a 422 naming the field or the
quota at save and on activation, never a 500 and never silent load (issue 18 #6, #8)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scripts.localinfra import stop_process
from tests.conftest import ApiUser
from tests.fixtures.database import Database
from tests.fixtures.stack import Stack
from tests.services.workflows.conftest import LOG_NODE, ExtraService, start_workflows

# The test stack's quotas: every setting at its default but the minimum interval (1 s there).
MAX_RUNS_PER_MINUTE = 60
MAX_ACTIVE = 50


def create(api: httpx.Client, **fields: Any) -> httpx.Response:
    return api.post("/workflows", json={"name": "clock", "nodes": [LOG_NODE], **fields})


def quota_of(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    (issue,) = response.json()["detail"]
    assert issue["loc"][:2] == ["body", "trigger"]
    quota: str = issue["type"]
    return quota


class TestNeverFiringCron:
    @pytest.mark.parametrize("cron", ["0 0 31 2 *", "0 0 30 2 *", "0 12 31 4,6,9,11 *"])
    def test_is_422_at_save_naming_cron(self, api: httpx.Client, cron: str) -> None:
        response = create(api, trigger={"type": "schedule", "cron": cron})
        assert response.status_code == 422, response.text
        (issue,) = response.json()["detail"]
        assert issue["loc"][:2] == ["body", "trigger"]
        assert "'cron'" in issue["msg"]
        assert "never fires" in issue["msg"]

    def test_a_leap_day_is_accepted(self, api: httpx.Client) -> None:
        response = create(api, trigger={"type": "schedule", "cron": "0 0 29 2 *"})
        assert response.status_code == 201, response.text

    def test_a_stored_one_is_422_on_activation(self, api: httpx.Client, db: Database) -> None:
        # Saved before such expressions were refused: activating it must name the field.
        workflow = create(
            api, active=False, trigger={"type": "schedule", "cron": "0 0 1 1 *"}
        ).json()
        db.execute(
            """UPDATE workflows SET trigger = '{"type": "schedule", "cron": "0 0 31 2 *"}'
               WHERE id = $1""",
            workflow["id"],
        )
        response = api.patch(f"/workflows/{workflow['id']}", json={"active": True})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "trigger", "cron"]
        assert api.get(f"/workflows/{workflow['id']}").json()["active"] is False


class TestScheduleQuotas:
    def test_twenty_every_second_schedules_are_bounded(self, api: httpx.Client) -> None:
        """Issue 18 #6: 20 `every: 1s` workflows of one user gave 120 runs in 6 s, forever."""
        answers = [create(api, trigger={"type": "schedule", "every": "1s"}) for _ in range(20)]
        accepted = [answer for answer in answers if answer.status_code == 201]
        refused = [answer for answer in answers if answer.status_code != 201]
        # 60 runs a minute is the whole quota: one `every: 1s` schedule takes it.
        assert len(accepted) == MAX_RUNS_PER_MINUTE // 60
        assert {quota_of(answer) for answer in refused} == {"quota.runs_per_minute"}
        assert "runs a minute" in refused[0].json()["detail"][0]["msg"]
        # Converting webhooks into schedules, or re-activating, meets the same bound.
        webhook = create(api).json()
        changed = api.patch(
            f"/workflows/{webhook['id']}", json={"trigger": {"type": "schedule", "every": "5s"}}
        )
        assert quota_of(changed) == "quota.runs_per_minute"
        first = accepted[0].json()
        assert api.patch(f"/workflows/{first['id']}", json={"active": False}).status_code == 200
        again = api.patch(
            f"/workflows/{webhook['id']}", json={"trigger": {"type": "schedule", "every": "5s"}}
        )
        assert again.status_code == 200, again.text
        reactivated = api.patch(f"/workflows/{first['id']}", json={"active": True})
        assert quota_of(reactivated) == "quota.runs_per_minute"

    def test_quotas_are_per_user(self, api: httpx.Client, other_api: httpx.Client) -> None:
        assert create(api, trigger={"type": "schedule", "every": "1s"}).status_code == 201
        assert create(other_api, trigger={"type": "schedule", "every": "1s"}).status_code == 201

    def test_active_schedules_per_user_are_bounded(self, api: httpx.Client) -> None:
        # Crons count as one run a minute: 50 fit the runs quota, the 51st breaks the count.
        for minute in range(MAX_ACTIVE):
            created = create(api, trigger={"type": "schedule", "cron": f"{minute} * * * *"})
            assert created.status_code == 201, created.text
        extra = create(api, trigger={"type": "schedule", "cron": "59 * * * *"})
        assert quota_of(extra) == "quota.max_active"
        # Inactive schedules and webhooks do not count.
        inactive = create(api, active=False, trigger={"type": "schedule", "cron": "0 * * * *"})
        assert inactive.status_code == 201, inactive.text
        assert create(api).status_code == 201


@pytest.fixture(scope="module")
def production_quotas(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ExtraService]:
    """A workflows process with the production minimum interval (10 s)."""
    log_dir = tmp_path_factory.mktemp("quotas")
    env = {"AUTOMATEOS_SCHEDULE_MIN_INTERVAL_SECONDS": "10"}
    service = start_workflows(stack, log_dir, env)
    yield ExtraService(service, stack.env["AUTOMATEOS_QUEUE_NAME"])
    stop_process(service.proc, timeout=20)


def test_the_minimum_interval_is_a_422_naming_every(
    production_quotas: ExtraService, user: ApiUser
) -> None:
    with production_quotas.client(user) as api:
        short = create(api, trigger={"type": "schedule", "every": "5s"})
        assert quota_of(short) == "quota.min_interval"
        assert short.json()["detail"][0]["loc"] == ["body", "trigger", "every"]
        assert create(api, trigger={"type": "schedule", "every": "10s"}).status_code == 201
