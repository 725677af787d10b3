"""PostgreSQL stopped the hard way (`pg_ctl stop -m immediate`) and frozen (SIGSTOP) mid-run."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from scripts.localinfra import PostgresServer
from tests.chaos.harness import (
    Burst,
    Outcome,
    Target,
    descendants,
    figures,
    own_stack,
    settle,
)

TOTAL = 150
FAULT_AFTER = 50
DOWN_S = 3.0
PAUSE_S = 10.0
# "Fast" for a client: well inside any load balancer's or user's patience, far from a hang.
ANSWER_WITHIN_S = 3.0
# Long enough that a hanging request shows as one instead of as a client-side error.
PROBE_TIMEOUT_S = 15.0

Answers = dict[str, tuple[int, float]]  # API name -> (status, seconds); 0: no answer


def _probe(target: Target) -> Answers:
    """One request to each API that needs PostgreSQL: its status and how long it took."""
    user = target.user
    requests = {
        "auth": ("POST", "auth", "/auth/login", {"email": user.email, "password": user.password}),
        "workflows": ("GET", "workflows", "/workflows", None),
        "worker": ("GET", "worker", "/readyz", None),
    }
    answers: Answers = {}
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


def _assert_refused_fast(answers: Answers) -> None:
    for name, (status, seconds) in answers.items():
        assert status == 503, (name, answers)
        assert seconds < ANSWER_WITHIN_S, (name, answers)


def _through_fault(
    tmp_path: Path, fault: Callable[[PostgresServer, Target], Answers]
) -> tuple[Outcome, float, float, Answers]:
    """A burst of webhooks with `fault` (which probes the APIs meanwhile) a third of the way in;
    what became of the runs, seconds until every API served again, seconds until the last run
    finished after that, the answers during."""
    with own_stack(tmp_path) as target:
        postgres = target.infra.postgres
        assert postgres is not None
        burst = Burst(target.ingest(), target.hook, TOTAL).start()
        burst.wait_accepted(FAULT_AFTER)
        during = fault(postgres, target)
        recovery_s = _until_serving(target)
        burst.join()
        counted, drain_s = settle(target, burst.accepted, deadline_s=90)
    return counted, recovery_s, drain_s, during


def _check(
    report: Callable[[str], None],
    scenario: str,
    through: tuple[Outcome, float, float, Answers],
) -> None:
    counted, recovery_s, drain_s, during = through
    slowest = max(seconds for _, seconds in during.values())
    extra = {"drain_s": round(drain_s, 1), "slowest_503_s": slowest, "reruns": counted.reruns}
    report(figures(scenario, counted, recovery_s, **extra))
    _assert_refused_fast(during)
    assert counted.accepted >= TOTAL  # ingest needs no PostgreSQL to accept
    assert counted.completed == counted.accepted, counted
    assert (counted.lost, counted.duplicated, counted.half_written) == (0, 0, 0), counted


def _stop_immediately(postgres: PostgresServer, target: Target) -> Answers:
    postgres.stop_immediately()
    stopped_at = time.monotonic()
    during = _probe(target)
    time.sleep(max(0.0, DOWN_S - (time.monotonic() - stopped_at)))
    postgres.start()
    return during


def _freeze(postgres: PostgresServer, target: Target) -> Answers:
    assert postgres.proc is not None
    # The whole server (postmaster first, so it forks no one new, then every backend) freezes,
    # as on a stalled host or a lost network.
    frozen = [postgres.proc.pid, *descendants(postgres.proc.pid)]
    for pid in frozen:
        with contextlib.suppress(ProcessLookupError):  # a backend that just ended
            os.kill(pid, signal.SIGSTOP)
    try:
        paused_at = time.monotonic()
        time.sleep(1)
        during = _probe(target)
        time.sleep(max(0.0, PAUSE_S - (time.monotonic() - paused_at)))
    finally:
        for pid in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    return during


class TestPostgresStoppedImmediately:
    def test_runs_finish_after_restart_and_the_apis_refuse_fast_meanwhile(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        through = _through_fault(tmp_path, _stop_immediately)
        _check(report, "postgres stop -m immediate mid-run", through)


class TestPostgresPaused:
    def test_a_frozen_server_is_a_fast_503_and_runs_finish_after_it_thaws(
        self, tmp_path: Path, report: Callable[[str], None]
    ) -> None:
        through = _through_fault(tmp_path, _freeze)
        _check(report, "postgres SIGSTOP 10 s mid-run", through)
