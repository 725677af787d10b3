"""When a schedule trigger ticks next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.schedules import check_cron, next_tick, parse_every, zone


class TestEvery:
    @pytest.mark.parametrize(
        ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400)]
    )
    def test_parses_units(self, text: str, seconds: int) -> None:
        assert parse_every(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["0s", "1", "5 minutes", "-1s", "400d", ""])
    def test_refuses_the_rest(self, text: str) -> None:
        with pytest.raises(ValueError, match="every"):
            parse_every(text)

    def test_ticks_are_aligned_and_strictly_after(self) -> None:
        at = datetime(2026, 11, 29, 12, 0, 10, tzinfo=UTC)
        assert next_tick({"every": "30s"}, at) == datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
        on_tick = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)
        assert next_tick({"every": "30s"}, on_tick) == on_tick + timedelta(seconds=30)


class TestCron:
    def test_evaluates_in_the_time_zone_across_daylight_saving(self) -> None:
        trigger = {"cron": "0 9 * * *", "timezone": "Europe/Berlin"}
        summer = next_tick(trigger, datetime(2026, 7, 1, 0, 0, tzinfo=UTC))
        winter = next_tick(trigger, datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
        assert (summer.hour, winter.hour) == (7, 8)  # 09:00 CEST and 09:00 CET in UTC

    @pytest.mark.parametrize("expression", ["* * *", "61 * * * *", "not cron", "* * * * * *"])
    def test_refuses_invalid_expressions(self, expression: str) -> None:
        with pytest.raises(ValueError, match="cron"):
            check_cron(expression)

    def test_refuses_an_unknown_zone(self) -> None:
        with pytest.raises(ValueError, match="time zone"):
            zone("Mars/Olympus")
