"""Profiles of ingest and of one worker process under load, with pyinstrument.

py-spy cannot read this machine's pyenv Python ("Failed to find python version from target
process"), so the process under study is started under `python -m pyinstrument` instead, with
the same command line the service runs with, and stopped by its pid: pyinstrument writes its
session when the program returns. The session is rendered as HTML (interactive) and as text
(the top of which goes into BENCHMARKS.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.localinfra import stop_process

ROOT = Path(__file__).resolve().parents[1]


def command_line(pid: int) -> list[str]:
    """argv of a running process (to re-run a worker child exactly as its supervisor did)."""
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]


@contextmanager
def profiled(
    argv: list[str], env: dict[str, str], session: Path, stop: signal.Signals = signal.SIGINT
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m <argv...>` under pyinstrument; on exit stop it and keep its session."""
    session.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pyinstrument", "-r", "session", "-o", str(session)]
    command += ["-i", "0.005", *argv]
    log = open(session.with_suffix(".log"), "ab")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
    )
    log.close()
    try:
        yield proc
    finally:
        stop_process(proc, stop, timeout=30)


def render(session: Path, html: Path, text: Path) -> str:
    """Render a saved session as HTML and text; return the text."""
    base = [sys.executable, "-m", "pyinstrument", "--load", str(session)]
    subprocess.run([*base, "-r", "html", "-o", str(html)], check=True, timeout=120)
    subprocess.run(
        [*base, "-r", "text", "--unicode", "--no-color", "-o", str(text)], check=True, timeout=120
    )
    return text.read_text(errors="replace")


def summary(text: str, lines: int = 45) -> str:
    """The top of a text profile (the heaviest call paths), for the report."""
    kept = [line.rstrip() for line in text.splitlines() if line.strip()]
    return "\n".join(kept[:lines])
