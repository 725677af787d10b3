"""Resume callbacks are stored only for runs that can still take one, briefly when they come
early, and within a per-user bound (issue 18 #5). The callback key's states are the protocol's
(shared/waits.py); here they are written as the worker writes them, and a real
ingest process answers."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.hooks import callback_key, resume_token
from shared.waits import (
    CALLBACK_CLOSED_TTL_S,
    CALLBACK_EARLY_BODY_TTL_S,
    CALLBACK_PARK_SLACK_S,
    callback_usage_keys,
    wake_key,
)
from tests.fixtures.servers import Infra
from tests.services.ingest.conftest import Ingest, ingest_env, running_ingest

STORAGE_PER_USER = 16 * 1024
WEBHOOK_KEY = secrets.token_urlsafe(32)


@pytest.fixture(scope="module")
def callbacks(
    tmp_path_factory: pytest.TempPathFactory, infra: Infra, ingest: Ingest
) -> Iterator[Ingest]:
    """An ingest process with a 16 KiB callback storage bound per user."""
    base = tmp_path_factory.mktemp("callbacks")
    env = ingest_env(
        infra,
        base / "data",
        ingest.workflows,
        AUTOMATEOS_CALLBACK_STORAGE_MAX_BYTES_PER_USER=str(STORAGE_PER_USER),
        AUTOMATEOS_WEBHOOK_KEY=WEBHOOK_KEY,
    )
    with running_ingest(env, base) as service:
        yield Ingest(service, env, ingest.redis, ingest.workflows)


def post(ingest: Ingest, run_id: str, body: object) -> httpx.Response:
    token = resume_token(WEBHOOK_KEY.encode(), run_id)
    return httpx.post(f"{ingest.url}/hooks/resume/{token}", json=body, timeout=10)


def parked(ingest: Ingest, owner: str, wait_s: int = 120) -> str:
    """A run parked on its callback, as the worker leaves it."""
    run_id = str(uuid.uuid4())
    ingest.redis.set(callback_key(run_id), f"W:{owner}:0", ex=wait_s)
    return run_id


class TestOnlyRunsThatCanTakeOne:
    def test_a_run_that_never_waits_stores_nothing(self, callbacks: Ingest) -> None:
        run_id = str(uuid.uuid4())
        answer = post(callbacks, run_id, {"x": "y" * 1000})
        assert answer.status_code == 404
        assert callbacks.redis.exists(callback_key(run_id)) == 0

    def test_a_closed_run_is_409_and_stays_closed_only_a_day(self, callbacks: Ingest) -> None:
        run_id = str(uuid.uuid4())
        callbacks.redis.set(callback_key(run_id), "C", ex=CALLBACK_CLOSED_TTL_S)
        assert post(callbacks, run_id, {}).status_code == 409
        assert callbacks.redis.get(callback_key(run_id)) == b"C"

    def test_an_early_body_is_kept_briefly(self, callbacks: Ingest) -> None:
        owner, run_id = str(uuid.uuid4()), str(uuid.uuid4())
        callbacks.redis.set(callback_key(run_id), f"O:{owner}", ex=1000)
        answer = post(callbacks, run_id, {"early": True})
        assert answer.status_code == 202, answer.text
        assert answer.json()["state"] == "stored"
        assert callbacks.redis.get(callback_key(run_id)) == f'B:{owner}{{"early":true}}'.encode()
        assert 0 < callbacks.redis.ttl(callback_key(run_id)) <= CALLBACK_EARLY_BODY_TTL_S
        assert post(callbacks, run_id, {}).status_code == 409

    def test_a_parked_run_is_woken_and_its_body_outlives_the_wait(self, callbacks: Ingest) -> None:
        owner = str(uuid.uuid4())
        run_id = parked(callbacks, owner, wait_s=120)
        answer = post(callbacks, run_id, {"approved": True})
        assert answer.status_code == 202, answer.text
        assert answer.json()["state"] == "resumed"
        ttl = callbacks.redis.ttl(callback_key(run_id))
        assert CALLBACK_PARK_SLACK_S - 5 <= ttl <= CALLBACK_PARK_SLACK_S
        # In the wake set, so the due-run poller resumes it within a second.
        woken = callbacks.redis.zscore(wake_key(callbacks.env["AUTOMATEOS_QUEUE_NAME"]), run_id)
        assert woken is not None


class TestStoragePerUser:
    def test_bodies_not_yet_taken_are_bounded_per_owner(self, callbacks: Ingest) -> None:
        owner, other = str(uuid.uuid4()), str(uuid.uuid4())
        body = {"blob": "x" * 5000}
        answers = [post(callbacks, parked(callbacks, owner), body).status_code for _ in range(4)]
        # Three 5 kB bodies fit in 16 KiB, the fourth does not.
        assert answers == [202, 202, 202, 429]
        refused = post(callbacks, parked(callbacks, owner), body)
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) >= 1
        # Another user's runs are not affected.
        assert post(callbacks, parked(callbacks, other), body).status_code == 202
        usage, sizes = callback_usage_keys(owner)
        assert callbacks.redis.zcard(usage) == 3
        assert int(callbacks.redis.hget(sizes, "_total") or 0) <= STORAGE_PER_USER
        assert 0 < callbacks.redis.ttl(sizes) <= 120 + CALLBACK_PARK_SLACK_S

    def test_expired_bodies_free_their_storage(self, callbacks: Ingest) -> None:
        owner = str(uuid.uuid4())
        body = {"blob": "x" * 5000}
        first = [parked(callbacks, owner) for _ in range(3)]
        for run_id in first:
            assert post(callbacks, run_id, body).status_code == 202
        assert post(callbacks, parked(callbacks, owner), body).status_code == 429
        # As if their bodies had expired: the next delivery drops them from the count.
        usage, _ = callback_usage_keys(owner)
        callbacks.redis.zadd(usage, dict.fromkeys(first, 1), xx=True)
        assert post(callbacks, parked(callbacks, owner), body).status_code == 202
