"""Redis killed (SIGKILL) in the middle of a webhook burst, then started again on its files."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.chaos.harness import Burst, Target, figures, own_stack, settle

TOTAL = 300
KILL_AFTER = 100
DOWN_S = 2.0
# Ingest's bound on any Redis operation is 2 s; a refusal may take that, never more.
REFUSAL_WITHIN_S = 3.0


def _kill_and_restart(target: Target, burst: Burst) -> tuple[float, float]:
    """SIGKILL Redis once `KILL_AFTER` runs were accepted; start it again `DOWN_S` later on the
    same port and folder. When it was killed and when it was back."""
    redis_server = target.infra.redis
    assert redis_server is not None
    assert redis_server.proc is not None
    burst.wait_accepted(KILL_AFTER)
    redis_server.proc.kill()
    redis_server.proc.wait(10)
    killed_at = time.monotonic()
    time.sleep(DOWN_S)
    redis_server.start()
    return killed_at, time.monotonic()


def _as_the_api_sees(target: Target, run_ids: frozenset[str]) -> dict[str, object]:
    """`GET /runs/{id}` of unfinished runs: 404 (gone) or their queue status (late)."""
    with target.user.client("workflows") as api:
        answers = {run_id: api.get(f"/runs/{run_id}") for run_id in run_ids}
    return {
        run_id: answer.json().get("status") if answer.status_code == 200 else answer.status_code
        for run_id, answer in answers.items()
    }


class TestRedisKilledMidBurst:
    def test_with_the_shipped_settings_every_accepted_run_completes(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        # Only Redis is killed: PostgreSQL may skip fsync (quicker to start).
        with own_stack(tmp_path, durable_postgres=False) as target:
            burst = Burst(target.ingest(), target.hook, TOTAL).start()
            killed_at, back_at = _kill_and_restart(target, burst)
            burst.join()
            # A job taken as Redis died waits in the started registry until its lease lapses
            # and a worker's recovery script re-queues it: measured 8 to 12 s until the last run
            # finished. The deadline is generous so a slow machine is not taken for a loss.
            counted, drain_s = settle(target, burst.accepted, deadline_s=240)
            late = _as_the_api_sees(target, counted.lost_ids)

        refusals = burst.refusals()
        first_after = burst.first_accepted_after(back_at)
        assert first_after is not None, "ingest never accepted again after Redis came back"
        report(
            figures(
                "redis SIGKILL mid-burst (appendonly)",
                counted,
                first_after - back_at,
                refused_503=len(refusals),
                down_s=round(back_at - killed_at, 1),
                drain_s=round(drain_s, 1),
            )
        )
        assert counted.accepted >= TOTAL  # senders in flight may overshoot
        problems = (counted.lost, counted.duplicated, counted.half_written)
        assert problems == (0, 0, 0), (counted, late)
        assert counted.completed == counted.accepted, counted
        # While Redis was away ingest refused, quickly, and said when to come back.
        assert refusals, "no request reached ingest while Redis was down"
        assert {a.status for a in refusals} == {503}
        assert all(a.retry_after and int(a.retry_after) > 0 for a in refusals)
        assert max(a.seconds for a in refusals) < REFUSAL_WITHIN_S
        assert first_after - back_at < 5

    def test_negative_control_without_persistence_the_test_sees_losses(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        with own_stack(tmp_path, durable_postgres=False, durable_redis=False) as target:
            burst = Burst(target.ingest(), target.hook, TOTAL).start()
            _, back_at = _kill_and_restart(target, burst)
            burst.join()
            # Lost jobs never finish: once nothing has finished for a while, count them.
            counted, _ = settle(target, burst.accepted, deadline_s=30, quiet_s=5)
            unknown = set(_as_the_api_sees(target, counted.lost_ids).values())

        first_after = burst.first_accepted_after(back_at)
        report(
            figures(
                "redis SIGKILL mid-burst (negative control: no persistence)",
                counted,
                (first_after or back_at) - back_at,
            )
        )
        assert counted.lost > 0, counted
        # Really lost, not merely late: neither the queue nor the database knows them any more.
        assert unknown == {404}, unknown
