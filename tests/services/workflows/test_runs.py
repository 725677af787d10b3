"""The runs API: manual runs, retries, run history and a run's steps.

Runs are accepted through `private_queue`, a workflows process whose queue no worker consumes,
so an accepted job stays in Redis to be checked whether or not worker processes are running.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import redis
import redis.asyncio as aioredis

from shared.ids import uuid7
from shared.queue import RunEnqueuer, RunJob, decode_job_data, job_key, queue_key
from tests.conftest import ApiUser
from tests.fixtures.database import Database
from tests.fixtures.servers import Infra
from tests.services.workflows.conftest import ExtraService, create_workflow

TRIGGER = {
    "body": {"amount": 150},
    "headers": {"content-type": "application/json"},
    "query": {"a": "1"},
    "method": "POST",
    "received_at": "2026-11-26T12:00:00+00:00",
}


@pytest.fixture
def runs_api(private_queue: ExtraService, user: ApiUser) -> Iterator[httpx.Client]:
    with private_queue.client(user) as client:
        yield client


@pytest.fixture
def other_runs_api(private_queue: ExtraService, other_user: ApiUser) -> Iterator[httpx.Client]:
    with private_queue.client(other_user) as client:
        yield client


def _owner(workflow_id: str, db: Database) -> uuid.UUID:
    [row] = db.fetch("SELECT owner_id FROM workflows WHERE id = $1", uuid.UUID(workflow_id))
    owner: uuid.UUID = row["owner_id"]
    return owner


def _queued_job(rds: redis.Redis, run_id: str) -> RunJob:
    raw = rds.hget(job_key(run_id), "data")
    assert isinstance(raw, bytes), "job not in Redis"
    job = decode_job_data(raw)
    assert job is not None
    return job


def insert_run(
    db: Database,
    workflow: dict[str, Any],
    *,
    status: str = "succeeded",
    version: int = 1,
    run_id: uuid.UUID | None = None,
    steps: list[dict[str, Any]] | None = None,
) -> uuid.UUID:
    """A run row as a worker would have written it, with its steps."""
    run_id = run_id or uuid7()
    accepted = datetime.now(UTC)
    db.execute(
        "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version, status, trigger,"
        " attempt, error, accepted_at, started_at, finished_at, duration_ms)"
        " SELECT $1, id, owner_id, $3, $4, $5::jsonb, 1, $6, $7, $7, $8, 42"
        " FROM workflows WHERE id = $2",
        run_id,
        uuid.UUID(workflow["id"]),
        version,
        status,
        json.dumps(TRIGGER),
        "boom" if status == "failed" else None,
        accepted,
        accepted + timedelta(milliseconds=42),
    )
    for step in steps or []:
        db.execute(
            "INSERT INTO run_steps (run_id, position, node_id, type, status, input, output,"
            " error, attempt, started_at, duration_ms)"
            " VALUES ($1, $2, $3, 'log', $4, $5::jsonb, $6::jsonb, $7, $8, $9, 3)",
            run_id,
            step["position"],
            step["node_id"],
            step.get("status", "succeeded"),
            json.dumps(step.get("input")),
            json.dumps(step.get("output")),
            step.get("error"),
            step.get("attempt", 1),
            accepted,
        )
    return run_id


class TestManualRun:
    def test_accepts_and_queues_a_job_carrying_the_body(
        self,
        runs_api: httpx.Client,
        private_queue: ExtraService,
        rds: redis.Redis,
        db: Database,
    ) -> None:
        workflow = create_workflow(runs_api)
        response = runs_api.post(f"/workflows/{workflow['id']}/run", json={"amount": 150})
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        assert response.headers["location"] == f"/runs/{run_id}"
        assert run_id.encode() in rds.lrange(queue_key(private_queue.queue_name), 0, -1)
        job = _queued_job(rds, run_id)
        assert job["workflow_id"] == workflow["id"]
        assert job["owner_id"] == str(_owner(workflow["id"], db))
        assert job["workflow_version"] == 1
        assert job["retry_of"] is None
        trigger = job["trigger"]
        assert (trigger["body"], trigger["method"], trigger["headers"], trigger["query"]) == (
            {"amount": 150},
            "POST",
            {},
            {},
        )
        assert datetime.fromisoformat(trigger["received_at"]).tzinfo is not None

    def test_run_is_visible_as_queued_at_once(self, runs_api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(runs_api)
        run_id = runs_api.post(f"/workflows/{workflow['id']}/run", json=[1, 2]).json()["run_id"]
        run = runs_api.get(f"/runs/{run_id}").json()
        assert (run["status"], run["steps"], run["attempt"]) == ("queued", [], 0)
        assert (run["workflow_id"], run["workflow_version"]) == (workflow["id"], 1)
        assert run["trigger"]["body"] == [1, 2]
        [row] = db.fetch("SELECT status FROM workflow_runs WHERE id = $1", uuid.UUID(run_id))
        assert row["status"] == "queued"

    @pytest.mark.parametrize(
        ("content", "body"),
        [(b"", None), (b'"text"', "text"), (b"3.5", 3.5), (b"null", None)],
    )
    def test_body_is_optional_and_any_json_value(
        self, runs_api: httpx.Client, rds: redis.Redis, content: bytes, body: Any
    ) -> None:
        workflow = create_workflow(runs_api)
        response = runs_api.post(
            f"/workflows/{workflow['id']}/run",
            content=content,
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 202
        assert _queued_job(rds, response.json()["run_id"])["trigger"]["body"] == body

    def test_malformed_json_is_422(self, runs_api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(runs_api)
        response = runs_api.post(
            f"/workflows/{workflow['id']}/run",
            content=b"{nope",
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 422
        rows = db.fetch(
            "SELECT 1 FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(workflow["id"])
        )
        assert rows == []

    def test_body_over_the_limit_is_413(self, runs_api: httpx.Client) -> None:
        workflow = create_workflow(runs_api)
        big = {"blob": "x" * 70_000}  # the private process allows 64 KiB
        response = runs_api.post(f"/workflows/{workflow['id']}/run", json=big)
        assert response.status_code == 413

    def test_runs_the_current_version(self, runs_api: httpx.Client, rds: redis.Redis) -> None:
        workflow = create_workflow(runs_api)
        runs_api.patch(f"/workflows/{workflow['id']}", json={"name": "v2"})
        run_id = runs_api.post(f"/workflows/{workflow['id']}/run").json()["run_id"]
        assert _queued_job(rds, run_id)["workflow_version"] == 2

    def test_unknown_workflow_is_404(self, runs_api: httpx.Client) -> None:
        assert runs_api.post(f"/workflows/{uuid.uuid4()}/run").status_code == 404


class TestTraceparent:
    """The queued job carries the span of the request that queued it (nothing is exported
    here; tests/e2e/test_traces.py checks the exported trace)."""

    TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
    CALLER = f"00-{TRACE_ID}-00f067aa0ba902b7-01"

    def test_manual_run_continues_the_callers_trace(
        self, runs_api: httpx.Client, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(runs_api)
        response = runs_api.post(
            f"/workflows/{workflow['id']}/run", headers={"traceparent": self.CALLER}
        )
        traceparent = _queued_job(rds, response.json()["run_id"])["traceparent"]
        assert traceparent is not None
        _, trace_id, span_id, _ = traceparent.split("-")
        assert trace_id == self.TRACE_ID
        assert span_id != "00f067aa0ba902b7"  # the workflows service's span, not the caller's

    def test_retry_without_a_caller_trace_starts_one(
        self, runs_api: httpx.Client, db: Database, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(runs_api)
        original = insert_run(db, workflow, status="failed")
        run_id = runs_api.post(f"/runs/{original}/retry").json()["run_id"]
        traceparent = _queued_job(rds, run_id)["traceparent"]
        assert traceparent is not None
        assert traceparent.split("-")[1] not in (self.TRACE_ID, "0" * 32)


class TestRunOnlyInRedis:
    """A run ingest accepted that no worker has recorded yet."""

    @pytest.fixture
    def queued_run(self, api: httpx.Client, db: Database, infra: Infra) -> dict[str, Any]:
        workflow = create_workflow(api)
        run_id = str(uuid7())
        job: RunJob = {
            "run_id": run_id,
            "workflow_id": workflow["id"],
            "owner_id": str(_owner(workflow["id"], db)),
            "workflow_version": 1,
            "trigger": TRIGGER,  # type: ignore[typeddict-item]
            "idempotency_key": "delivery-1",
            "traceparent": None,
            "retry_of": None,
        }

        async def enqueue() -> None:
            client = aioredis.Redis.from_url(infra.redis_url)
            # A queue no worker listens on: the job must stay queued.
            await RunEnqueuer(client, f"unconsumed-{run_id}", 60).enqueue(job)
            await client.aclose()

        asyncio.run(enqueue())
        return {"run_id": run_id, "workflow": workflow}

    def test_owner_sees_it_as_queued(self, api: httpx.Client, queued_run: dict[str, Any]) -> None:
        response = api.get(f"/runs/{queued_run['run_id']}")
        assert response.status_code == 200
        run = response.json()
        assert (run["id"], run["status"], run["steps"]) == (queued_run["run_id"], "queued", [])
        assert run["workflow_id"] == queued_run["workflow"]["id"]
        assert run["trigger"] == TRIGGER
        assert run["accepted_at"] == "2026-11-26T12:00:00Z"

    def test_another_user_gets_404(
        self, other_api: httpx.Client, queued_run: dict[str, Any]
    ) -> None:
        assert other_api.get(f"/runs/{queued_run['run_id']}").status_code == 404

    def test_can_be_retried(
        self, runs_api: httpx.Client, queued_run: dict[str, Any], rds: redis.Redis
    ) -> None:
        response = runs_api.post(f"/runs/{queued_run['run_id']}/retry")
        assert response.status_code == 202
        job = _queued_job(rds, response.json()["run_id"])
        assert (job["retry_of"], job["trigger"]) == (queued_run["run_id"], TRIGGER)


class TestRunDetail:
    def test_returns_the_run_with_steps_in_order(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        steps = [
            {"position": 2, "node_id": "c", "status": "skipped"},
            {"position": 0, "node_id": "a", "input": {"m": 1}, "output": {"ok": True}},
            {"position": 1, "node_id": "b", "status": "failed", "error": "bad", "attempt": 3},
        ]
        run_id = insert_run(db, workflow, status="failed", steps=steps)
        response = api.get(f"/runs/{run_id}")
        assert response.status_code == 200
        run = response.json()
        assert (run["status"], run["error"], run["duration_ms"]) == ("failed", "boom", 42)
        assert run["trigger"] == TRIGGER
        assert [step["node_id"] for step in run["steps"]] == ["a", "b", "c"]
        first, second, _ = run["steps"]
        assert (first["input"], first["output"], first["type"]) == ({"m": 1}, {"ok": True}, "log")
        assert (second["status"], second["error"], second["attempt"]) == ("failed", "bad", 3)
        assert set(first) == {
            "node_id",
            "type",
            "status",
            "input",
            "output",
            "error",
            "started_at",
            "duration_ms",
            "attempt",
            "items",
        }
        # Not a for-each step (its workflow version has none).
        assert first["items"] is None

    @pytest.mark.parametrize("run_id", [str(uuid7()), "not-a-uuid"])
    def test_unknown_or_malformed_run_is_404(self, api: httpx.Client, run_id: str) -> None:
        response = api.get(f"/runs/{run_id}")
        assert response.status_code == 404
        assert response.json() == {"detail": "run not found"}


class TestRunList:
    def test_walks_runs_newest_first_without_gaps(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        created = [str(insert_run(db, workflow)) for _ in range(7)]
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/workflows/{workflow['id']}/runs", params=params).json()
            seen.extend(item["id"] for item in page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                break
        # Newest first by id: UUIDv7 ids are time ordered (ids of one millisecond in any order).
        assert seen == sorted(created, key=uuid.UUID, reverse=True)

    def test_items_are_summaries(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        insert_run(db, workflow)
        [item] = api.get(f"/workflows/{workflow['id']}/runs").json()["items"]
        assert "steps" not in item
        assert "trigger" not in item
        assert item["status"] == "succeeded"

    def test_filters_by_status(self, api: httpx.Client, db: Database) -> None:
        workflow = create_workflow(api)
        failed = {str(insert_run(db, workflow, status="failed")) for _ in range(2)}
        insert_run(db, workflow, status="succeeded")
        page = api.get(f"/workflows/{workflow['id']}/runs", params={"status": "failed"}).json()
        assert {item["id"] for item in page["items"]} == failed

    @pytest.mark.parametrize(
        "params", [{"status": "exploded"}, {"limit": 0}, {"limit": 101}, {"cursor": "%%%"}]
    )
    def test_rejects_bad_query(self, api: httpx.Client, params: dict[str, Any]) -> None:
        workflow = create_workflow(api)
        response = api.get(f"/workflows/{workflow['id']}/runs", params=params)
        assert response.status_code == 422

    def test_only_lists_this_workflows_runs(self, api: httpx.Client, db: Database) -> None:
        first, second = create_workflow(api), create_workflow(api)
        mine = insert_run(db, first)
        insert_run(db, second)
        items = api.get(f"/workflows/{first['id']}/runs").json()["items"]
        assert [item["id"] for item in items] == [str(mine)]


class TestRetry:
    def test_creates_a_queued_run_of_the_current_version_with_the_same_input(
        self, runs_api: httpx.Client, db: Database, rds: redis.Redis
    ) -> None:
        workflow = create_workflow(runs_api)
        original = insert_run(db, workflow, status="failed", version=1)
        runs_api.patch(f"/workflows/{workflow['id']}", json={"description": "fixed"})
        response = runs_api.post(f"/runs/{original}/retry")
        assert response.status_code == 202
        run_id = response.json()["run_id"]
        assert run_id != str(original)
        assert response.headers["location"] == f"/runs/{run_id}"
        run = runs_api.get(f"/runs/{run_id}").json()
        assert (run["status"], run["retry_of"], run["workflow_version"]) == (
            "queued",
            str(original),
            2,
        )
        assert run["trigger"] == TRIGGER
        job = _queued_job(rds, run_id)
        assert (job["retry_of"], job["workflow_version"], job["trigger"]) == (
            str(original),
            2,
            TRIGGER,
        )


class TestRunTenancy:
    @pytest.fixture
    def owned(self, runs_api: httpx.Client, db: Database) -> dict[str, Any]:
        workflow = create_workflow(runs_api)
        return {"workflow": workflow["id"], "run": str(insert_run(db, workflow))}

    @pytest.mark.parametrize(
        ("method", "template"),
        [
            ("POST", "/workflows/{workflow}/run"),
            ("GET", "/workflows/{workflow}/runs"),
            ("GET", "/runs/{run}"),
            ("POST", "/runs/{run}/retry"),
        ],
    )
    def test_another_users_runs_are_404(
        self,
        other_runs_api: httpx.Client,
        owned: dict[str, Any],
        db: Database,
        method: str,
        template: str,
    ) -> None:
        response = other_runs_api.request(method, template.format(**owned))
        assert response.status_code == 404
        rows = db.fetch(
            "SELECT id FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(owned["workflow"])
        )
        assert [str(row["id"]) for row in rows] == [owned["run"]]


class TestQueueUnavailable:
    """Against a workflows process whose Redis is down: never a 202 for work not stored."""

    def test_manual_run_is_503_and_leaves_no_run(
        self, api: httpx.Client, user: ApiUser, redis_down: ExtraService, db: Database
    ) -> None:
        workflow = create_workflow(api)
        with redis_down.client(user) as down:
            response = down.post(f"/workflows/{workflow['id']}/run", json={"a": 1})
        assert response.status_code == 503
        rows = db.fetch(
            "SELECT 1 FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(workflow["id"])
        )
        assert rows == []

    def test_retry_is_503_and_leaves_no_run(
        self, api: httpx.Client, user: ApiUser, redis_down: ExtraService, db: Database
    ) -> None:
        workflow = create_workflow(api)
        original = insert_run(db, workflow, status="failed")
        with redis_down.client(user) as down:
            assert down.post(f"/runs/{original}/retry").status_code == 503
        rows = db.fetch(
            "SELECT id FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(workflow["id"])
        )
        assert [row["id"] for row in rows] == [original]

    def test_recorded_run_is_still_readable(
        self, api: httpx.Client, user: ApiUser, redis_down: ExtraService, db: Database
    ) -> None:
        original = insert_run(db, create_workflow(api))
        with redis_down.client(user) as down:
            assert down.get(f"/runs/{original}").status_code == 200
            # Not in PostgreSQL and Redis cannot be asked: unknown is not the same as absent.
            assert down.get(f"/runs/{uuid7()}").status_code == 503
