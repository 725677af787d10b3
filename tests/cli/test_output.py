"""What the CLI prints where: colour only on a terminal and never with NO_COLOR; progress only
on a terminal; JSON untouched by either; `--since` durations and times."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pytest

from automateos._cli.output import Output
from automateos._cli.timespec import moment


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROWS = [{"id": "r1", "status": "failed"}, {"id": "r2", "status": "succeeded"}]


def test_colour_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    out, err = Terminal(), Terminal()
    Output(json_mode=False, stdout=out, stderr=err).table(ROWS, ("id", "status"))
    assert "\033[31mfailed" in out.getvalue()


@pytest.mark.parametrize("no_color", [True, False])
def test_no_colour_with_no_color_or_off_a_terminal(
    monkeypatch: pytest.MonkeyPatch, no_color: bool
) -> None:
    if no_color:
        monkeypatch.setenv("NO_COLOR", "1")
        out, err = Terminal(), Terminal()
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
        out, err = io.StringIO(), io.StringIO()
    printer = Output(json_mode=False, stdout=out, stderr=err)
    printer.table(ROWS, ("id", "status"))
    printer.error("boom")
    assert "\033[" not in out.getvalue() + err.getvalue()
    assert out.getvalue().splitlines() == ["ID  STATUS", "r1  failed", "r2  succeeded"]


def test_progress_only_on_a_terminal_and_never_in_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    for stderr, json_mode, shown in (
        (Terminal(), False, True),
        (io.StringIO(), False, False),
        (Terminal(), True, False),
    ):
        out = io.StringIO()
        printer = Output(json_mode=json_mode, stdout=out, stderr=stderr)
        printer.progress("validating 1/2")
        printer.table(ROWS, ("id", "status"))
        assert ("validating" in stderr.getvalue()) is shown
        if json_mode:
            assert json.loads(out.getvalue()) == ROWS


def test_since_takes_durations_and_iso_times() -> None:
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert moment("90m", now) == datetime(2026, 12, 7, 10, 30, tzinfo=UTC)
    assert moment("2d", now) == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert moment("2026-12-01T08:00") == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert moment("2026-12-01T08:00+02:00").utcoffset() is not None
    with pytest.raises(ValueError, match="neither a duration"):
        moment("yesterday")
