"""When Redis cannot take the job: a quick 503, never a hang, never a 202 for unstored work."""

from __future__ import annotations

import hashlib
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from scripts.localinfra import RedisServer, free_port
from shared.queue import queue_key
from tests.fixtures.servers import Infra
from tests.services.ingest.conftest import Ingest, RoutedHook, ingest_env, running_ingest

# Connect 1 s + reply 2 s + one reconnect: anything slower is a hang as far as a sender knows.
BOUNDED_S = 7.0


class Fragile:
    """An ingest process on a Redis of its own that the tests stop, freeze and restart."""

    def __init__(self, server: RedisServer, ingest: Ingest) -> None:
        self.server = server
        self.ingest = ingest

    def restart(self) -> None:
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.server.proc.send_signal(signal.SIGCONT)
            return
        self.server.start()


@pytest.fixture(scope="module")
def fragile(
    tmp_path_factory: pytest.TempPathFactory, infra: Infra, ingest: Ingest
) -> Iterator[Fragile]:
    base = tmp_path_factory.mktemp("fragile")
    server = RedisServer(base / "redis", durable=False).start()
    env = ingest_env(infra, base / "data", ingest.workflows)
    env["REDIS_URL"] = server.url
    try:
        with running_ingest(env, base) as service:
            client = redis.Redis.from_url(server.url, socket_timeout=2)
            yield Fragile(server, Ingest(service, env, client, ingest.workflows))
    finally:
        if server.proc is not None:
            server.proc.send_signal(signal.SIGCONT)
        server.stop()


@pytest.fixture
def healthy(fragile: Fragile) -> Fragile:
    fragile.restart()
    return fragile


def _post(http: httpx.Client, hook: RoutedHook) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = http.post(
        hook.path, json={"n": 1}, headers={"Idempotency-Key": secrets.token_hex(4)}
    )
    return response, time.monotonic() - start


class TestRedisDown:
    def test_answers_503_quickly(self, healthy: Fragile) -> None:
        hook = healthy.ingest.route()
        with healthy.ingest.client() as http:
            assert http.post(hook.path, json={}).status_code == 202  # record now cached
            healthy.server.stop()
            response, took = _post(http, hook)
        assert response.status_code == 503
        assert response.json() == {"detail": "queue unavailable, retry later"}
        assert int(response.headers["retry-after"]) > 0
        assert took < BOUNDED_S

    def test_unknown_token_is_503_not_404(self, healthy: Fragile) -> None:
        healthy.server.stop()
        with healthy.ingest.client() as http:
            response = http.post(f"/hooks/{secrets.token_urlsafe(32)}", json={})
        assert response.status_code == 503

    def test_is_unready(self, healthy: Fragile) -> None:
        healthy.server.stop()
        with healthy.ingest.client() as http:
            assert http.get("/readyz").status_code == 503

    def test_recovers_when_redis_returns(self, healthy: Fragile) -> None:
        hook = healthy.ingest.route()
        healthy.server.stop()
        with healthy.ingest.client() as http:
            assert http.post(hook.path, json={}).status_code == 503
            healthy.server.start()
            hook.publish()  # a non-durable Redis came back empty
            response = http.post(hook.path, json={})
        assert response.status_code == 202
        assert healthy.ingest.queued_ids() == [response.json()["run_id"]]


class TestRedisFrozen:
    def test_answers_503_within_the_socket_timeout(self, healthy: Fragile) -> None:
        hook = healthy.ingest.route()
        with healthy.ingest.client() as http:
            assert http.post(hook.path, json={}).status_code == 202
            assert healthy.server.proc is not None
            healthy.server.proc.send_signal(signal.SIGSTOP)
            try:
                response, took = _post(http, hook)
            finally:
                healthy.server.proc.send_signal(signal.SIGCONT)
        assert response.status_code == 503
        assert took < BOUNDED_S


@pytest.fixture(scope="class")
def no_rpush_user(infra: Infra) -> Iterator[str]:
    """A Redis user that may do everything but RPUSH: the job's MULTI fails after the claim."""
    admin = redis.Redis.from_url(infra.redis_url)
    name, password = f"norpush{secrets.token_hex(3)}", secrets.token_hex(12)
    admin.acl_setuser(
        name,
        enabled=True,
        passwords=[f"+{password}"],
        keys=["*"],
        channels=["*"],
        categories=["+@all"],
        commands=["-rpush"],
    )
    try:
        yield infra.redis_url.replace("redis://", f"redis://{name}:{password}@")
    finally:
        admin.acl_deluser(name)
        admin.close()


@pytest.fixture(scope="class")
def refusing(
    no_rpush_user: str,
    infra: Infra,
    ingest: Ingest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Ingest]:
    base = tmp_path_factory.mktemp("refusing")
    env = ingest_env(infra, base / "data", ingest.workflows, REDIS_URL=no_rpush_user)
    with running_ingest(env, base) as service:
        yield Ingest(service, env, ingest.redis, ingest.workflows)


class TestQueueRefusesTheJob:
    def test_no_202_and_no_job(self, refusing: Ingest) -> None:
        hook = refusing.route()
        with refusing.client() as http:
            response = http.post(hook.path, json={})
        assert response.status_code == 503
        assert refusing.redis.llen(queue_key(refusing.env["AUTOMATEOS_QUEUE_NAME"])) == 0

    def test_dedupe_claim_is_released_so_a_retry_can_succeed(self, refusing: Ingest) -> None:
        hook = refusing.route()
        with refusing.client() as http:
            response = http.post(hook.path, json={}, headers={"Idempotency-Key": "evt-1"})
        assert response.status_code == 503
        digest = hashlib.sha256(b"evt-1").hexdigest()
        assert refusing.redis.exists(f"automateos:dedupe:{hook.workflow_id}:{digest}") == 0


def test_workflows_unreachable_and_redis_missing_is_503(
    infra: Infra, ingest: Ingest, tmp_path: Path
) -> None:
    env = ingest_env(infra, tmp_path / "data", None)
    env["AUTOMATEOS_WORKFLOWS_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens
    with running_ingest(env, tmp_path) as service, httpx.Client(base_url=service.url) as http:
        response = http.post(f"/hooks/{secrets.token_urlsafe(32)}", json={})
    assert response.status_code == 503
