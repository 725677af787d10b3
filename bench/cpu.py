"""CPU a system spent, from /proc: every process of its trees, before and after a workload.

A process's own CPU is utime + stime (`/proc/<pid>/stat` fields 14 and 15); what its children
spent and the kernel has reaped is cutime + cstime (fields 16 and 17). Summing all four over a
tree's live processes therefore counts processes that started and ended inside the window too:
a PostgreSQL backend that disconnected, a render process that was replaced, a worker process
that was restarted. Clock ticks are 10 ms here, so a figure is only as good as the run count
behind it (hundreds of runs, not tens).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.memory import descendants

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def parse_stat(line: str) -> tuple[int, int, int, int]:
    """(utime, stime, cutime, cstime) in clock ticks from one /proc/<pid>/stat line.

    The command name (field 2) is in parentheses and may itself hold spaces and ')', so the
    fields are counted from the last ')'.
    """
    rest = line[line.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): fields 14-17 are rest[11:15].
    utime, stime, cutime, cstime = (int(v) for v in rest[11:15])
    return utime, stime, cutime, cstime


def process_ticks(pid: int) -> int:
    """Clock ticks `pid` and its reaped children have used; 0 when it is gone."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return sum(parse_stat(line))


def tree_ticks(root: int) -> dict[int, int]:
    """pid -> ticks for `root` and every process below it, read now."""
    return {pid: process_ticks(pid) for pid in (root, *descendants(root)) if pid > 0}


def group_seconds(before: Mapping[int, int], after: Mapping[int, int]) -> float:
    """CPU seconds spent between two readings of one group of processes.

    A process that ended in between is counted by its parent's cutime/cstime in `after`, so its
    `before` ticks are subtracted there; a process that is new in `after` started inside the
    window and counts whole. Never negative: a process reparented away (its ticks left with it)
    would otherwise make the group look like it gave CPU back.
    """
    return max(0, sum(after.values()) - sum(before.values())) / TICKS_PER_S


@dataclass(frozen=True)
class CpuReading:
    """One reading of every group: group -> {pid: ticks}."""

    groups: dict[str, dict[int, int]]


def read(groups: Mapping[str, Iterable[int]]) -> CpuReading:
    """Read every tree of every group (a group is the processes one figure adds up)."""
    out: dict[str, dict[int, int]] = {}
    for name, roots in groups.items():
        merged: dict[int, int] = {}
        for root in roots:
            merged.update(tree_ticks(root))
        out[name] = merged
    return CpuReading(out)


def spent(before: CpuReading, after: CpuReading) -> dict[str, float]:
    """CPU seconds per group between two readings."""
    return {
        name: group_seconds(before.groups.get(name, {}), ticks)
        for name, ticks in after.groups.items()
    }


def per_run_ms(seconds: Mapping[str, float], runs: int) -> dict[str, float | None]:
    """CPU milliseconds per finished run for each group (None when nothing finished)."""
    return {name: (s * 1000 / runs if runs else None) for name, s in seconds.items()}


def wait_quiet(
    roots: Iterable[int], below_cores: float = 0.1, window_s: float = 0.5, deadline_s: float = 30
) -> float:
    """Wait until `roots`' trees use under `below_cores` of a core over `window_s`; seconds waited.

    A freshly started worker's processes spend seconds of CPU importing and connecting after it
    reports ready: measured inside a round, that start-up would be billed to the runs.
    """
    pids = list(roots)
    began = time.monotonic()
    while time.monotonic() - began < deadline_s:
        before = read({"tree": pids})
        time.sleep(window_s)
        if spent(before, read({"tree": pids}))["tree"] < below_cores * window_s:
            break
    return time.monotonic() - began
