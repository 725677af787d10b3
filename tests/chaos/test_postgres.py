"""PostgreSQL stopped the hard way (`pg_ctl stop -m immediate`) and frozen (SIGSTOP) mid-run."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.chaos.harness import Burst, Target, descendants, figures, own_stack, settle

TOTAL = 150
FAULT_AFTER = 50
DOWN_S = 3.0
PAUSE_S = 10.0
# "Fast" for a client: well inside any load balancer's or user's patience, far from a hang.
ANSWER_WITHIN_S = 3.0
# Long enough that a hanging request shows as one instead of as a client-side error.
PROBE_TIMEOUT_S = 15.0


def _probe(target: Target) -> dict[str, tuple[int, float]]:
    """One request to each API that needs PostgreSQL: its status and how long it took."""
    user = target.user
    requests = {
        "auth": ("POST", "auth", "/auth/login", {"email": user.email, "password": user.password}),
        "workflows": ("GET", "workflows", "/workflows", None),
        "worker": ("GET", "worker", "/readyz", None),
    }
    answers: dict[str, tuple[int, float]] = {}
    for name, (method, service, path, body) in requests.items():
        began = time.monotonic()
        try:
            with user.client(service) as http:
                http.timeout = httpx.Timeout(PROBE_TIMEOUT_S)
                status = http.request(method, path, json=body).status_code
        except httpx.TimeoutException:
            status = 0
        answers[name] = (status, round(time.monotonic() - began, 2))
    return answers


def _until_serving(target: Target, deadline_s: float = 30) -> float:
    """Seconds until every API answers 200 again."""
    began = time.monotonic()
    while time.monotonic() < began + deadline_s:
        if all(status == 200 for status, _ in _probe(target).values()):
            return time.monotonic() - began
        time.sleep(0.2)
    raise AssertionError(f"not serving again within {deadline_s}s: {_probe(target)}")


def _assert_refused_fast(answers: dict[str, tuple[int, float]]) -> None:
    for name, (status, seconds) in answers.items():
        assert status == 503, (name, answers)
        assert seconds < ANSWER_WITHIN_S, (name, answers)


class TestPostgresStoppedImmediately:
    def test_runs_finish_after_restart_and_the_apis_refuse_fast_meanwhile(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        with own_stack(tmp_path) as target:
            postgres = target.infra.postgres
            assert postgres is not None
            burst = Burst(target.ingest(), target.hook, TOTAL).start()
            burst.wait_accepted(FAULT_AFTER)
            postgres.stop_immediately()
            stopped_at = time.monotonic()
            during = _probe(target)
            time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped_at)))
            postgres.start()
            recovery_s = _until_serving(target)
            burst.join()
            counted, _ = settle(target, burst.accepted, deadline_s=90)

        slowest = max(seconds for _, seconds in during.values())
        report(
            figures(
                "postgres stop -m immediate mid-run",
                counted,
                recovery_s,
                slowest_answer_down_s=slowest,
                reruns=counted.reruns,
            )
        )
        _assert_refused_fast(during)
        assert counted.accepted >= TOTAL  # ingest needs no PostgreSQL to accept
        assert counted.completed == counted.accepted, counted
        assert (counted.lost, counted.duplicated, counted.half_written) == (0, 0, 0), counted


class TestPostgresPaused:
    def test_a_frozen_server_is_a_fast_503_and_runs_finish_after_it_thaws(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        with own_stack(tmp_path) as target:
            postgres = target.infra.postgres
            assert postgres is not None
            assert postgres.proc is not None
            burst = Burst(target.ingest(), target.hook, TOTAL).start()
            burst.wait_accepted(FAULT_AFTER)
            # The whole server (postmaster first, so it forks no one new, then every backend)
            # freezes, as on a stalled host or a lost network.
            frozen = [postgres.proc.pid, *descendants(postgres.proc.pid)]
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            try:
                paused_at = time.monotonic()
                time.sleep(1)
                during = _probe(target)
                time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
            finally:
                for pid in reversed(frozen):
                    os.kill(pid, signal.SIGCONT)
            recovery_s = _until_serving(target)
            burst.join()
            counted, _ = settle(target, burst.accepted, deadline_s=90)

        slowest = max(seconds for _, seconds in during.values())
        report(
            figures(
                "postgres SIGSTOP 10 s mid-run",
                counted,
                recovery_s,
                slowest_answer_down_s=slowest,
                reruns=counted.reruns,
            )
        )
        _assert_refused_fast(during)
        assert counted.accepted >= TOTAL
        assert counted.completed == counted.accepted, counted
        assert (counted.lost, counted.duplicated, counted.half_written) == (0, 0, 0), counted
