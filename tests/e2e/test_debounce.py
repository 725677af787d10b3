"""Debounce end to end: webhook deliveries of one key fold into one run, answers name it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import httpx

from tests.conftest import ApiUser
from tests.e2e.conftest import create_workflow, hook_path, wait_for_run
from tests.fixtures.stack import Stack

ECHO_BODY = [
    {"id": "seen", "type": "transform", "params": {"values": {"n": "{{ trigger.body.n }}"}}}
]


def test_deliveries_within_the_period_make_one_run_with_the_last_body(
    stack: Stack, user: ApiUser
) -> None:
    debounce = {"period_s": 1.5, "key": "{{ trigger.body.order }}"}
    workflow = create_workflow(user, ECHO_BODY, debounce=debounce)
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        answers = [ingest.post(hook_path(workflow), json={"order": "A", "n": n}) for n in range(3)]
        other = ingest.post(hook_path(workflow), json={"order": "B", "n": 9})
    assert [a.status_code for a in answers] == [202, 202, 202]
    run_ids = {a.json()["run_id"] for a in answers}
    assert len(run_ids) == 1, [a.json() for a in answers]
    assert [a.json()["joined"] for a in answers] == [False, True, True]
    (run_id,) = run_ids
    assert answers[2].headers["location"].endswith(f"/runs/{run_id}")
    assert other.json()["run_id"] != run_id

    with user.client("workflows") as api:
        pending = api.get(f"/runs/{run_id}").json()
    assert (pending["status"], pending["waiting_reason"]) == ("queued", "debounced"), pending

    run = wait_for_run(user, run_id, deadline_s=20)
    assert run["status"] == "succeeded", run
    assert run["trigger"]["body"] == {"order": "A", "n": 2}
    assert run["steps"][0]["output"] == {"n": 2}
    assert wait_for_run(user, other.json()["run_id"], deadline_s=20)["status"] == "succeeded"


def test_max_wait_starts_the_run_even_while_deliveries_keep_coming(
    stack: Stack, user: ApiUser
) -> None:
    workflow = create_workflow(user, ECHO_BODY, debounce={"period_s": 1.0, "max_wait_s": 2.0})
    run_ids: list[str] = []
    first_sent = datetime.now(UTC)
    with httpx.Client(base_url=stack.url("ingest"), timeout=10) as ingest:
        end = time.monotonic() + 5.0
        n = 0
        while time.monotonic() < end:
            answer = ingest.post(hook_path(workflow), json={"n": n})
            assert answer.status_code == 202, answer.text
            if answer.json()["run_id"] not in run_ids:
                run_ids.append(answer.json()["run_id"])
            n += 1
            time.sleep(0.3)
    # Without max_wait the deliveries (0.3 s apart, period 1 s) would fold into one run.
    assert len(run_ids) >= 2, run_ids
    first = wait_for_run(user, run_ids[0], deadline_s=20)
    assert first["status"] == "succeeded"
    waited = datetime.fromisoformat(first["started_at"]) - first_sent
    # At most max_wait after the first delivery, plus the scheduler's whole-second rounding.
    assert waited.total_seconds() < 2.0 + 2.5, waited
