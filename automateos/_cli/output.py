"""How the CLI prints: tables and colour on a terminal, JSON for scripts, progress on stderr."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from pydantic import BaseModel

_STYLES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}
_STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "dim",
    "running": "yellow",
    "queued": "yellow",
    "waiting": "cyan",
    "created": "green",
    "updated": "yellow",
    "deactivated": "red",
    "unchanged": "dim",
}


def _wants_colour(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return stream.isatty()


def plain(value: Any) -> Any:
    """A JSON-ready copy of models, lists and dicts (times and ids as strings)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class Output:
    def __init__(
        self, *, json_mode: bool, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
    ) -> None:
        self.json_mode = json_mode
        self.stdout = stdout
        self.stderr = stderr
        self._colour = _wants_colour(stdout)
        self._err_colour = _wants_colour(stderr)
        # Progress is for people watching: only on a terminal, never mixed into JSON.
        self._progress = stderr.isatty() and not json_mode
        self._progress_shown = False

    def style(self, text: str, style: str, *, stream_colour: bool | None = None) -> str:
        use = self._colour if stream_colour is None else stream_colour
        code = _STYLES.get(style)
        return f"\033[{code}m{text}\033[0m" if use and code else text

    def status(self, status: str) -> str:
        return self.style(status, _STATUS_STYLE.get(status.split(" ")[0], ""))

    def line(self, text: str = "") -> None:
        self.clear_progress()
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def json(self, value: Any) -> None:
        self.clear_progress()
        self.stdout.write(json.dumps(plain(value), indent=2, ensure_ascii=False) + "\n")
        self.stdout.flush()

    def error(self, text: str) -> None:
        self.clear_progress()
        prefix = self.style("error:", "red", stream_colour=self._err_colour)
        self.stderr.write(f"{prefix} {text}\n")
        self.stderr.flush()

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, on stderr (stdout stays parseable)."""
        self.clear_progress()
        self.stderr.write(self.style(text, "dim", stream_colour=self._err_colour) + "\n")
        self.stderr.flush()

    def progress(self, text: str) -> None:
        if self._progress:
            self.stderr.write("\r" + text[:120] + "\033[K")
            self.stderr.flush()
            self._progress_shown = True

    def clear_progress(self) -> None:
        if self._progress_shown:
            self.stderr.write("\r\033[K")
            self.stderr.flush()
            self._progress_shown = False

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
        """Rows as aligned columns (a `status` column coloured), or all of them as JSON."""
        if self.json_mode:
            self.json(list(rows))
            return
        if not rows:
            self.note("(none)")
            return
        cells = [[_cell(row.get(column)) for column in columns] for row in rows]
        widths = [
            max(len(column), *(len(line[index]) for line in cells))
            for index, column in enumerate(columns)
        ]
        header = "  ".join(
            column.upper().ljust(width) for column, width in zip(columns, widths, strict=True)
        )
        self.line(self.style(header.rstrip(), "bold"))
        for line in cells:
            parts = []
            for column, value, width in zip(columns, line, widths, strict=True):
                padded = value.ljust(width)
                parts.append(self.status(padded) if column == "status" else padded)
            self.line("  ".join(parts).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
