from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from nodes.delay import MAX_DELAY_S, NODE, DelayParams
from shared.nodes import Park
from tests.shared.nodes.local_http import make_ctx


class TestDelay:
    async def test_waits_at_least_the_requested_time(self, client):
        started = time.monotonic()
        output = await NODE.execute(make_ctx(client), DelayParams(seconds=0.2))
        assert time.monotonic() - started >= 0.2
        assert output == {"waited_s": 0.2}

    async def test_zero_seconds_returns_at_once(self, client):
        assert await NODE.execute(make_ctx(client), DelayParams(seconds=0)) == {"waited_s": 0}

    async def test_a_wait_past_the_park_threshold_parks_instead_of_sleeping(self, client):
        ctx = make_ctx(client)
        ctx.park_after_s = 5
        started = time.monotonic()
        outcome = await NODE.execute(ctx, DelayParams(seconds=5.5))
        assert time.monotonic() - started < 0.5
        assert outcome == Park(resume_in_s=5.5, output={"waited_s": 5.5})

    def test_thirty_days_is_the_longest_wait(self):
        assert DelayParams(seconds=MAX_DELAY_S).seconds == 30 * 24 * 3600

    @pytest.mark.parametrize("seconds", [-1, MAX_DELAY_S + 1, float("inf"), float("nan")])
    def test_out_of_range_refused(self, seconds):
        with pytest.raises(ValidationError):
            DelayParams(seconds=seconds)

    def test_is_pure_so_a_resumed_run_recomputes_it(self):
        assert NODE.has_effects is False
