"""The run engine in real worker processes: nodes, templating, failures, retries, records."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.ids import uuid7
from tests.fixtures.servers import Infra
from tests.fixtures.stack import ServiceProcess
from tests.services.worker.conftest import PAYLOAD_MAX_BYTES, log_text
from tests.services.worker.harness import (
    LocalApi,
    Queue,
    create_user,
    create_workflow,
    fetch_run,
    fetch_steps,
    run_job,
    wait_job_gone,
    wait_run,
)


async def _run(
    db: AsyncEngine, queue: Queue, nodes: list[dict[str, Any]], body: Any = None, **job: Any
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    workflow = await create_workflow(db, await create_user(db), nodes)
    run_id = await queue.put(run_job(workflow, body, **job))
    run = await wait_run(db, run_id)
    return run, await fetch_steps(db, run_id)


class TestCoreNodes:
    async def test_http_request_sends_rendered_json_and_records_the_answer(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "post",
                "type": "http_request",
                "params": {
                    "method": "POST",
                    "url": api.url("/echo/order"),
                    "json": {"order": "{{ trigger.body.id }}", "amount": "{{ trigger.body.n }}"},
                },
            }
        ]
        run, steps = await _run(db, queue, nodes, {"id": "A-1", "n": 150})
        assert run["status"] == "succeeded", run
        assert run["attempt"] == 1
        [step] = steps
        assert step["status"] == "succeeded"
        assert step["input"]["json"] == {"order": "A-1", "amount": 150}
        assert step["output"]["status"] == 200
        assert step["output"]["body"]["json"] == {"order": "A-1", "amount": 150}
        assert step["attempt"] == 1
        assert step["duration_ms"] >= 0
        assert step["started_at"] is not None

    async def test_later_steps_template_earlier_outputs(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "shape",
                "type": "transform",
                "params": {"values": {"total": "{{ trigger.body.n * 2 }}", "who": "{{ run.id }}"}},
            },
            {
                "id": "say",
                "type": "log",
                "params": {"message": "total {{ steps.shape.total }} attempt {{ run.attempt }}"},
            },
        ]
        run, steps = await _run(db, queue, nodes, {"n": 21})
        assert run["status"] == "succeeded", run
        assert steps[0]["output"] == {"total": 42, "who": str(run["id"])}
        assert steps[1]["output"] == {"message": "total 42 attempt 1"}

    async def test_delay_waits_and_records_its_output(self, db: AsyncEngine, queue: Queue) -> None:
        run, steps = await _run(
            db, queue, [{"id": "wait", "type": "delay", "params": {"seconds": 0.3}}]
        )
        assert run["status"] == "succeeded", run
        assert steps[0]["output"] == {"waited_s": 0.3}
        assert steps[0]["duration_ms"] >= 300

    async def test_filter_that_passes_lets_the_run_go_on(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "big",
                "type": "filter",
                "params": {"all": [{"left": "{{ trigger.body.n }}", "op": "gt", "right": 100}]},
            },
            {"id": "after", "type": "transform", "params": {"values": {"ok": True}}},
        ]
        run, steps = await _run(db, queue, nodes, {"n": 150})
        assert run["status"] == "succeeded"
        assert [s["status"] for s in steps] == ["succeeded", "succeeded"]
        assert steps[0]["output"] == {"passed": True, "results": [True]}

    async def test_filter_that_fails_ends_the_run_and_skips_the_rest(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "big",
                "type": "filter",
                "params": {"all": [{"left": "{{ trigger.body.n }}", "op": "gt", "right": 100}]},
            },
            {"id": "post", "type": "http_request", "params": {"url": api.url("/echo/never")}},
            {"id": "note", "type": "log", "params": {"message": "never"}},
        ]
        run, steps = await _run(db, queue, nodes, {"n": 5})
        assert run["status"] == "succeeded"
        assert run["error"] is None
        assert [s["status"] for s in steps] == ["succeeded", "skipped", "skipped"]
        assert steps[0]["output"] == {"passed": False, "results": [False]}
        assert "filter conditions not met" in steps[1]["error"]
        assert steps[1]["attempt"] == 0
        assert api.hits_for("/echo/never") == []


class TestFailures:
    async def test_a_failed_step_fails_the_run_and_names_the_node(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "fetch", "type": "http_request", "params": {"url": api.url("/status/404")}},
            {"id": "after", "type": "log", "params": {"message": "not reached"}},
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "failed"
        assert run["error"].startswith("node 'fetch' (http_request) failed:")
        assert "404" in run["error"]
        assert [s["status"] for s in steps] == ["failed", "skipped"]
        assert "404" in steps[0]["error"]
        assert run["finished_at"] is not None
        assert run["duration_ms"] is not None

    async def test_params_invalid_after_rendering_fail_the_step_clearly(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes = [{"id": "wait", "type": "delay", "params": {"seconds": "{{ trigger.body.s }}"}}]
        run, steps = await _run(db, queue, nodes, {"s": "soon"})
        assert run["status"] == "failed"
        assert steps[0]["error"].startswith("params invalid after rendering: seconds:")
        assert steps[0]["input"] == {"seconds": "soon"}
        assert "node 'wait'" in run["error"]

    async def test_continue_on_fail_records_the_error_and_goes_on(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "fetch",
                "type": "http_request",
                "continue_on_fail": True,
                "params": {"url": api.url("/status/400")},
            },
            {
                "id": "after",
                "type": "transform",
                "params": {"values": {"saw": "{{ steps.fetch.error }}"}},
            },
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "succeeded", run
        assert steps[0]["status"] == "failed"
        assert "400" in steps[0]["output"]["error"]
        assert steps[1]["status"] == "succeeded"
        assert steps[1]["output"]["saw"] == steps[0]["output"]["error"]


class TestRetries:
    async def test_retryable_failures_are_retried_and_the_tries_counted(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        path = f"/flaky/{id(self)}-twice"
        nodes: list[dict[str, Any]] = [
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max": 3, "backoff": 0.01},
                "params": {"url": api.url(path + "?fail=2")},
            }
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "succeeded", run
        assert steps[0]["attempt"] == 3
        assert steps[0]["output"]["body"] == {"ok": True, "tries": 3}
        assert len(api.hits_for(path)) == 3

    async def test_retries_stop_at_the_policy_maximum(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        path = f"/flaky/{id(self)}-always"
        nodes: list[dict[str, Any]] = [
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max": 1, "backoff": 0.01},
                "params": {"url": api.url(path + "?fail=99")},
            }
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "failed"
        assert steps[0]["attempt"] == 2
        assert len(api.hits_for(path)) == 2

    async def test_retry_after_is_waited_instead_of_the_backoff(
        self, db: AsyncEngine, queue: Queue, api: LocalApi
    ) -> None:
        path = f"/flaky/{id(self)}-429"
        nodes: list[dict[str, Any]] = [
            {
                "id": "call",
                "type": "http_request",
                "retry": {"max": 2, "backoff": 0.01},
                "params": {"url": api.url(path + "?fail=1&status=429&retry_after=1")},
            }
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "succeeded", run
        first, second = api.hits_for(path)
        assert second.at - first.at >= 0.95
        assert steps[0]["attempt"] == 2

    async def test_timeout_s_stops_a_slow_node(self, db: AsyncEngine, queue: Queue) -> None:
        # Below the park threshold (a longer delay parks the run instead of holding it).
        nodes = [{"id": "slow", "type": "delay", "timeout_s": 0.2, "params": {"seconds": 4}}]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "failed"
        assert steps[0]["error"] == "timed out after 0.2s"
        assert steps[0]["duration_ms"] < 5000


class TestRecords:
    async def test_oversize_payload_is_replaced_by_a_truncation_marker(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "big", "type": "transform", "params": {"values": {"blob": "{{ 'x' * 10000 }}"}}}
        ]
        run, steps = await _run(db, queue, nodes)
        assert run["status"] == "succeeded"
        output = steps[0]["output"]
        assert output["truncated"] is True
        assert output["size"] > PAYLOAD_MAX_BYTES
        assert output["preview"].startswith('{"blob":"xxx')
        assert len(output["preview"]) <= 1024

    async def test_nul_characters_do_not_break_the_record(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {
                "id": "copy",
                "type": "transform",
                "params": {"values": {"text": "{{ trigger.body.t }}"}},
            }
        ]
        run, steps = await _run(db, queue, nodes, {"t": "a\u0000b"})
        assert run["status"] == "succeeded", run
        assert run["trigger"]["body"] == {"t": "a\ufffdb"}
        assert steps[0]["output"] == {"text": "a\ufffdb"}

    async def test_credentials_are_redacted_in_records_and_never_logged(
        self, db: AsyncEngine, queue: Queue, api: LocalApi, shared_worker: ServiceProcess
    ) -> None:
        secret = f"s3cr3t-{uuid.uuid4().hex}"
        nodes: list[dict[str, Any]] = [
            {
                "id": "call",
                "type": "http_request",
                "params": {
                    "method": "POST",
                    "url": api.url(f"/echo/auth?api_key={secret}&page=2"),
                    "headers": {"Authorization": f"Bearer {secret}", "X-Api-Key": secret},
                    "json": {"user": "ann", "password": secret},
                },
            }
        ]
        run, steps = await _run(
            db, queue, nodes, headers={"authorization": secret, "x-request-id": "r1"}
        )
        assert run["status"] == "succeeded", run
        [hit] = api.hits_for("/echo/auth")
        assert hit.headers["authorization"] == f"Bearer {secret}"
        recorded = steps[0]["input"]
        assert recorded["headers"] == {"Authorization": "[redacted]", "X-Api-Key": "[redacted]"}
        assert recorded["url"].endswith("/echo/auth?api_key=[redacted]&page=2")
        assert recorded["json"] == {"user": "ann", "password": "[redacted]"}
        assert run["trigger"]["headers"] == {"authorization": "[redacted]", "x-request-id": "r1"}
        async with db.connect() as conn:
            dump = await conn.scalar(
                text(
                    "SELECT concat(r::text, (SELECT string_agg(s::text, '') FROM run_steps s"
                    " WHERE s.run_id = r.id)) FROM workflow_runs r WHERE r.id = :id"
                ),
                {"id": run["id"]},
            )
        assert secret not in dump
        assert secret not in log_text(shared_worker)


class TestDelivery:
    async def test_a_finished_run_delivered_again_does_nothing(
        self, db: AsyncEngine, queue: Queue, api: LocalApi, infra: Infra
    ) -> None:
        workflow = await create_workflow(
            db,
            await create_user(db),
            [{"id": "call", "type": "http_request", "params": {"url": api.url("/echo/once")}}],
        )
        job = run_job(workflow)
        await queue.put(job)
        first = await wait_run(db, job["run_id"])
        await queue.put(job)
        await wait_job_gone(infra.redis_url, job["run_id"])
        again = await fetch_run(db, job["run_id"])
        assert again is not None
        assert (again["status"], again["attempt"]) == ("succeeded", 1)
        assert again["finished_at"] == first["finished_at"]
        assert len(await fetch_steps(db, job["run_id"])) == 1
        assert len(api.hits_for("/echo/once")) == 1

    async def test_two_deliveries_at_once_record_one_run(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "wait", "type": "delay", "params": {"seconds": 1}},
            {
                "id": "done",
                "type": "transform",
                "params": {"values": {"attempt": "{{ run.attempt }}"}},
            },
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        job = run_job(workflow)
        await queue.put(job)
        await queue.put(job)
        await wait_run(db, job["run_id"])
        await asyncio.sleep(1.0)  # let the superseded delivery finish (and be discarded)
        run = await fetch_run(db, job["run_id"])
        assert run is not None
        assert (run["status"], run["attempt"]) == ("succeeded", 2)
        steps = await fetch_steps(db, job["run_id"])
        assert [s["node_id"] for s in steps] == ["wait", "done"]
        assert steps[1]["output"] == {"attempt": 2}

    async def test_a_duplicate_idempotency_key_is_recorded_as_cancelled(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        workflow = await create_workflow(
            db, await create_user(db), [{"id": "note", "type": "log", "params": {"message": "hi"}}]
        )
        first = await queue.put(run_job(workflow, idempotency_key="delivery-7"))
        await wait_run(db, first)
        second = await queue.put(run_job(workflow, idempotency_key="delivery-7"))
        run = await wait_run(db, second)
        assert run["status"] == "cancelled"
        assert run["error"] == f"duplicate delivery of run {first}"
        assert run["idempotency_key"] is None
        assert await fetch_steps(db, second) == []
        original = await fetch_run(db, first)
        assert original is not None
        assert original["idempotency_key"] == "delivery-7"

    async def test_a_run_past_its_deadline_is_failed_before_the_job_times_out(
        self, db: AsyncEngine, queue: Queue
    ) -> None:
        nodes: list[dict[str, Any]] = [
            {"id": "slow", "type": "delay", "params": {"seconds": 4.5}},
            {"id": "after", "type": "log", "params": {"message": "late"}},
        ]
        workflow = await create_workflow(db, await create_user(db), nodes)
        run_id = await queue.put(run_job(workflow), job_timeout_s=3)
        run = await wait_run(db, run_id, timeout=10)
        assert run["status"] == "failed"
        assert run["error"] == "run exceeded its deadline while node 'slow' was running"
        assert 1500 <= run["duration_ms"] < 3000
        steps = await fetch_steps(db, run_id)
        assert [s["status"] for s in steps] == ["failed", "skipped"]


class TestRecoverySweep:
    async def test_only_stale_runs_without_a_live_job_are_marked_failed(
        self, db: AsyncEngine, queue: Queue, infra: Infra
    ) -> None:
        workflow = await create_workflow(db, await create_user(db), [])
        lost, alive = str(uuid7()), str(uuid7())
        async with db.begin() as conn:
            for run_id in (lost, alive):
                await conn.execute(
                    text(
                        "INSERT INTO workflow_runs (id, workflow_id, owner_id, workflow_version,"
                        " status, trigger, attempt, accepted_at, started_at) VALUES (:id, :wf,"
                        " :owner, 1, 'running', '{}'::jsonb, 1, now() - interval '2 hours',"
                        " now() - interval '2 hours')"
                    ),
                    {"id": uuid.UUID(run_id), "wf": workflow.id, "owner": workflow.owner_id},
                )
        client = aioredis.Redis.from_url(infra.redis_url)
        # A job RQ still holds (say, a very long one on a busy worker): its run is not lost.
        await client.hset(f"rq:job:{alive}", "status", "started")
        try:
            run = await wait_run(db, lost, ("failed",), timeout=10)
            assert run["error"] == "worker lost; job not recoverable"
            await asyncio.sleep(1.5)
            still = await fetch_run(db, alive)
            assert still is not None
            assert still["status"] == "running"
        finally:
            await client.delete(f"rq:job:{alive}")
            await client.aclose()


def _sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (fails when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    for line in metrics.splitlines():
        series, _, value = line.rpartition(" ")
        if series == name + (f"{{{wanted}}}" if wanted else ""):
            return float(value)
    raise AssertionError(f"no sample {name}{{{wanted}}}")


class TestMetrics:
    async def test_metrics_cover_runs_nodes_queue_and_processes(
        self,
        db: AsyncEngine,
        queue: Queue,
        shared_worker: ServiceProcess,
        shared_env: dict[str, str],
    ) -> None:
        before = httpx.get(f"{shared_worker.url}/metrics", timeout=5).text
        nodes: list[dict[str, Any]] = [
            {"id": "a", "type": "transform", "params": {"values": {"x": 1}}},
            {"id": "b", "type": "log", "params": {"message": "m"}},
        ]
        run, _ = await _run(db, queue, nodes)
        assert run["status"] == "succeeded"
        metrics = httpx.get(f"{shared_worker.url}/metrics", timeout=5).text

        def grew(name: str, **labels: str) -> float:
            try:
                old = _sample(before, name, **labels)
            except AssertionError:
                old = 0.0
            return _sample(metrics, name, **labels) - old

        assert grew("automateos_runs_total", status="succeeded") >= 1
        assert grew("automateos_run_duration_seconds_count", status="succeeded") >= 1
        assert grew("automateos_node_executions_total", node_type="log", status="succeeded") >= 1
        assert (
            grew(
                "automateos_node_duration_seconds_count", node_type="transform", status="succeeded"
            )
            >= 1
        )
        assert grew("automateos_queue_wait_seconds_count") >= 1
        name = shared_env["AUTOMATEOS_QUEUE_NAME"]
        assert _sample(metrics, "automateos_queue_jobs", queue=name, state="queued") == 0
        for state in ("started", "failed", "scheduled", "deferred"):
            _sample(metrics, "automateos_queue_jobs", queue=name, state=state)
        for worker in ("0", "1"):
            assert _sample(metrics, "automateos_worker_heartbeat_age_seconds", worker=worker) < 8
            assert (
                _sample(metrics, "automateos_worker_process_resident_memory_bytes", worker=worker)
                > 10e6
            )
            assert (
                _sample(metrics, "automateos_worker_process_cpu_seconds_total", worker=worker) > 0
            )
        assert "automateos_node_retries_total" in metrics
