"""Overload answers instead of timeouts (issue 17 §3): a 503 with Retry-After above the queue
backlog bound or near Redis's maxmemory, and a 429 with Retry-After beyond a webhook's token
bucket, so one hot sender cannot take the front door from the others."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from scripts.localinfra import RedisServer
from tests.fixtures.servers import Infra
from tests.services.ingest.conftest import Ingest, RoutedHook, ingest_env, running_ingest

MAX_BACKLOG = 5
CHECK_S = 0.05


@pytest.fixture(scope="module")
def bounded(
    tmp_path_factory: pytest.TempPathFactory, infra: Infra, ingest: Ingest
) -> Iterator[Ingest]:
    """An ingest process with a backlog bound of 5 on a Redis of its own."""
    base = tmp_path_factory.mktemp("bounded")
    server = RedisServer(base / "redis", durable=False, maxmemory="64mb").start()
    env = ingest_env(
        infra,
        base / "data",
        ingest.workflows,
        AUTOMATEOS_INGEST_MAX_BACKLOG=str(MAX_BACKLOG),
        AUTOMATEOS_INGEST_OVERLOAD_CHECK_SECONDS=str(CHECK_S),
    )
    env["REDIS_URL"] = server.url
    try:
        with running_ingest(env, base) as service:
            client = redis.Redis.from_url(server.url, socket_timeout=2)
            yield Ingest(service, env, client, ingest.workflows)
            client.close()
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


def settle() -> None:
    """Long enough for the background reader to take a fresh reading."""
    time.sleep(CHECK_S * 6)


class TestOverload:
    def test_above_the_backlog_bound_is_503_with_retry_after(self, bounded: Ingest) -> None:
        bounded.redis.delete(bounded.queue)
        hook = bounded.route()
        settle()
        with bounded.client() as client:
            for _ in range(MAX_BACKLOG):
                assert client.post(hook.path, json={}).status_code == 202
            settle()
            refused = client.post(hook.path, json={})
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert "queued" in refused.json()["detail"]
            # Nothing was stored for the refused delivery.
            assert len(bounded.queued_ids()) == MAX_BACKLOG
            # Workers drain the queue: deliveries are accepted again.
            bounded.redis.delete(bounded.queue)
            settle()
            assert client.post(hook.path, json={}).status_code == 202
        bounded.redis.delete(bounded.queue)

    def test_near_maxmemory_is_503_before_redis_refuses(self, bounded: Ingest) -> None:
        bounded.redis.delete(bounded.queue)
        hook = bounded.route()
        used = int(bounded.redis.info("memory")["used_memory"])
        maximum = used * 8
        bounded.redis.config_set("maxmemory", str(maximum))
        try:
            settle()
            with bounded.client() as client:
                assert client.post(hook.path, json={}).status_code == 202
                # Fill Redis to ~92 % of maxmemory: below it, so Redis would still take writes.
                for chunk in range(10_000):
                    if int(bounded.redis.info("memory")["used_memory"]) >= 0.92 * maximum:
                        break
                    bounded.redis.set(f"ballast:{chunk}", b"x" * 32_768)
                settle()
                info = bounded.redis.info("memory")
                assert info["used_memory"] < info["maxmemory"]
                refused = client.post(hook.path, json={})
                assert refused.status_code == 503, refused.text
                assert int(refused.headers["retry-after"]) >= 1
                assert "nearly full" in refused.json()["detail"]
                _drop_ballast(bounded.redis)
                settle()
                assert client.post(hook.path, json={}).status_code == 202
        finally:
            _drop_ballast(bounded.redis)
            bounded.redis.config_set("maxmemory", "64mb")
            bounded.redis.delete(bounded.queue)


def _drop_ballast(client: redis.Redis) -> None:
    keys = list(client.scan_iter("ballast:*", count=1000))
    if keys:
        client.delete(*keys)


class TestRateLimit:
    def test_beyond_the_bucket_is_429_with_retry_after(self, ingest: Ingest) -> None:
        hot = ingest.route()
        hot.publish(rate_limit={"per_s": 0.5, "burst": 3})
        quiet = ingest.route()
        with ingest.client() as client:
            answers = [client.post(hot.path, json={}).status_code for _ in range(3)]
            assert answers == [202, 202, 202]
            limited = client.post(hot.path, json={})
            assert limited.status_code == 429
            assert 1 <= int(limited.headers["retry-after"]) <= 2
            # Another webhook has a bucket of its own.
            assert client.post(quiet.path, json={}).status_code == 202
        assert len(ingest.queued_ids()) == 4

    def test_a_hot_webhook_does_not_crowd_out_the_quiet_ones(self, ingest: Ingest) -> None:
        """One webhook at 10x its limit beside nine quiet ones: the quiet ones get >= 99 %
        202, every 202 is stored on the queue, and accepted deliveries answer in <= 50 ms
        (p99)."""
        per_s, burst, seconds = 5, 5, 2.0
        hot = ingest.route()
        hot.publish(rate_limit={"per_s": per_s, "burst": burst})
        quiet = [ingest.route() for _ in range(9)]
        # Warm the routing cache and the connections, so the test measures steady state.
        with ingest.client() as client:
            for hook in quiet:
                assert client.post(hook.path, json={}).status_code == 202
        ingest.redis.delete(ingest.queue)
        before = _hook_latencies(ingest)
        plan = [(i / (10 * per_s), hot) for i in range(int(10 * per_s * seconds))]
        plan += [(i * 0.2 + k * 0.02, hook) for k, hook in enumerate(quiet) for i in range(10)]
        results = asyncio.run(_deliver(ingest.url, sorted(plan, key=lambda item: item[0])))

        quiet_paths = {hook.path for hook in quiet}
        quiet_answers = [status for path, status, *_ in results if path in quiet_paths]
        hot_answers = [status for path, status, *_ in results if path == hot.path]
        hot_sent = [sent for path, _, _, latency, sent in results if path == hot.path]
        hot_done = [sent + latency for path, _, _, latency, sent in results if path == hot.path]
        assert len(quiet_answers) == 90
        assert quiet_answers.count(202) >= 0.99 * len(quiet_answers), quiet_answers
        assert set(hot_answers) <= {202, 429}
        # The bucket: its burst plus what refilled while its deliveries were in flight (planned:
        # 2 s; longer on a busy machine), give or take a token.
        in_flight = max(hot_done) - min(hot_sent)
        assert hot_answers.count(202) <= burst + per_s * in_flight + 2
        assert hot_answers.count(429) > 0

        accepted = [(run_id, latency) for _, status, run_id, latency, _ in results if status == 202]
        queued = set(ingest.queued_ids())
        assert {run_id for run_id, _ in accepted} <= queued
        assert len(queued) == len(accepted)
        # Latency as ingest measures it (request in to answer out): on a busy 2-core machine
        # the test's own HTTP client queues for the CPU longer than ingest takes to answer.
        # At most 1 % of accepted deliveries may be slower than 50 ms, and every delivery
        # slower than that is counted against them, whatever its answer.
        now = _hook_latencies(ingest)
        total, within = now[0] - before[0], now[1] - before[1]
        assert total >= len(results)
        assert total - within <= 0.01 * len(accepted), f"{total - within} answers over 50 ms"


def _hook_latencies(ingest: Ingest) -> tuple[float, float]:
    """(deliveries answered, of which within 50 ms) from ingest's request latency histogram."""
    text = httpx.get(ingest.url + "/metrics", timeout=10).text
    count = within = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("route") != "/hooks/{token}":
                continue
            if sample.name.endswith("_count"):
                count += sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 0.05:
                within += sample.value
    return count, within


Answer = tuple[str, int, str | None, float, float]


async def _deliver(url: str, plan: list[tuple[float, RoutedHook]]) -> list[Answer]:
    """Send each delivery at its planned offset: (path, status, run id, seconds it took, when
    it was sent) per answer."""
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        start = time.perf_counter()

        async def one(at: float, hook: RoutedHook) -> Answer:
            await asyncio.sleep(max(0.0, start + at - time.perf_counter()))
            sent = time.perf_counter()
            response = await client.post(hook.path, json={"at": at})
            elapsed = time.perf_counter() - sent
            run_id = response.json().get("run_id") if response.status_code == 202 else None
            return hook.path, response.status_code, run_id, elapsed, sent

        return list(await asyncio.gather(*(one(at, hook) for at, hook in plan)))
