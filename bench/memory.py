"""Resident memory of every process of both systems, sampled in a background thread.

Read from /proc (Linux): VmRSS of each watched process and of each of its descendants, so a
worker's child processes and n8n's task runner are seen one by one. A server made of many
processes sharing memory (PostgreSQL and its backends) is one figure: the sum of their PSS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


def rss_mb(pid: int) -> float:
    """VmRSS of `pid` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def pss_mb(pid: int) -> float:
    """Proportional set size of `pid` in MB: shared pages split among the processes sharing them.

    Summing RSS over PostgreSQL's backends counts its shared buffers once per backend (we saw
    ~940 MB for a server using a fraction of that); PSS sums to what the tree really holds.
    """
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return rss_mb(pid)


def children(pid: int) -> list[int]:
    """Direct children of `pid`, from every thread's children list."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            text = (task / "children").read_text()
            found.extend(int(child) for child in text.split())
    except OSError:
        pass
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, depth first."""
    out: list[int] = []
    stack = children(pid)
    while stack:
        child = stack.pop()
        out.append(child)
        stack.extend(children(child))
    return out


def command_name(pid: int) -> str:
    """A short name for a child process: its argv[0..2] basename joined."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [Path(a.decode(errors="replace")).name for a in argv[:3] if a]
    return " ".join(words)[:40] or "?"


@dataclass
class Watched:
    """One process to follow: `label` names it in the report; `summed` adds up its tree."""

    system: str
    label: str
    pid: int
    summed: bool = False


@dataclass
class Sampler:
    """Samples every `interval_s` until stopped; `samples` holds (t, system, label, MB)."""

    interval_s: float = 0.5
    watched: list[Watched] = field(default_factory=list)
    samples: list[tuple[float, str, str, float]] = field(default_factory=list)
    marks: list[tuple[float, str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    started: float = field(default_factory=time.time)

    def watch(self, system: str, label: str, pid: int, summed: bool = False) -> None:
        """Follow `pid` from now on (replacing an earlier watch of the same label)."""
        with self._lock:
            self.watched = [w for w in self.watched if (w.system, w.label) != (system, label)]
            self.watched.append(Watched(system, label, pid, summed))

    def mark(self, what: str) -> None:
        """Note a phase boundary, drawn on the memory chart."""
        self.marks.append((time.time() - self.started, what))

    def sample_once(self) -> list[tuple[float, str, str, float]]:
        """One sample of every watched process; also stored."""
        now = time.time() - self.started
        rows: list[tuple[float, str, str, float]] = []
        with self._lock:
            watched = list(self.watched)
        for w in watched:
            tree = descendants(w.pid)
            if w.summed:
                rows.append((now, w.system, w.label, pss_mb(w.pid) + sum(map(pss_mb, tree))))
                continue
            rows.append((now, w.system, w.label, rss_mb(w.pid)))
            for number, child in enumerate(sorted(tree)):
                name = f"{w.label} child {number + 1} ({command_name(child)})"
                rows.append((now, w.system, name, rss_mb(child)))
        self.samples.extend(r for r in rows if r[3] > 0)
        return rows

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def start(self) -> Sampler:
        """Start sampling in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, daemon=True, name="rss-sampler")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop sampling (bounded wait for the thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def snapshot(self, system: str) -> dict[str, float]:
        """Resident MB of each process of `system` right now (an idle figure)."""
        return {label: mb for _, sys_, label, mb in self.sample_once() if sys_ == system and mb}

    def peaks(self, system: str) -> dict[str, float]:
        """Highest resident MB seen per process of `system` over the whole run."""
        out: dict[str, float] = {}
        for _, sys_, label, mb in self.samples:
            if sys_ == system:
                out[label] = max(out.get(label, 0.0), mb)
        return out

    def totals(self, system: str) -> list[tuple[float, float]]:
        """(t, total MB of `system`) per sampling instant, for the memory-over-time chart."""
        by_time: dict[float, float] = {}
        for t, sys_, _, mb in self.samples:
            if sys_ == system:
                by_time[t] = by_time.get(t, 0.0) + mb
        return sorted(by_time.items())
