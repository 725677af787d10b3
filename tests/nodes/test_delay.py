from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from nodes.delay import NODE, DelayParams
from tests.shared.nodes.local_http import make_ctx


class TestDelay:
    async def test_waits_at_least_the_requested_time(self, client):
        started = time.monotonic()
        output = await NODE.execute(make_ctx(client), DelayParams(seconds=0.2))
        assert time.monotonic() - started >= 0.2
        assert output == {"waited_s": 0.2}

    async def test_zero_seconds_returns_at_once(self, client):
        assert await NODE.execute(make_ctx(client), DelayParams(seconds=0)) == {"waited_s": 0}

    @pytest.mark.parametrize("seconds", [-1, 3601, float("inf"), float("nan")])
    def test_out_of_range_refused(self, seconds):
        with pytest.raises(ValidationError):
            DelayParams(seconds=seconds)
