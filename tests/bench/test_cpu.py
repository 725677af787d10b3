"""CPU accounting over process trees (bench/cpu.py), against real processes."""

from __future__ import annotations

import subprocess
import sys

from bench import cpu
from scripts.localinfra import stop_process

# Burns CPU in a child it waits for (the child's CPU moves into its cutime, which the tree
# reading must still count), then burns its own, says "done" and idles until stopped.
SPIN = """
import subprocess, sys, time
def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
if sys.argv[1] == "parent":
    subprocess.run([sys.executable, "-c", f"PROGRAM = {PROGRAM!r}\\n{PROGRAM}", "child"])
burn(0.3)
if sys.argv[1] == "parent":
    print("done", flush=True)
    time.sleep(60)
"""


def test_parse_stat_counts_fields_after_a_command_name_with_spaces_and_parentheses() -> None:
    fields = ["S", *(str(n) for n in range(4, 14)), "70", "30", "5", "2", "20", "0"]
    line = f"4242 (we ird) (name) {' '.join(fields)}\n"
    assert cpu.parse_stat(line) == (70, 30, 5, 2)


def test_a_tree_counts_its_own_cpu_and_a_finished_child_reaped_inside_the_window() -> None:
    program = f"PROGRAM = {SPIN!r}\n{SPIN}"
    proc = subprocess.Popen([sys.executable, "-c", program, "parent"], stdout=subprocess.PIPE)
    try:
        before = cpu.read({"tree": [proc.pid]})
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"done"
        after = cpu.read({"tree": [proc.pid]})
        seconds = cpu.spent(before, after)["tree"]
        # Two bursts of 0.3 s (parent, then its reaped child), less what ran before `before`.
        assert 0.45 <= seconds <= 1.5, seconds
        assert cpu.per_run_ms({"tree": seconds}, 10)["tree"] == seconds * 100
        assert cpu.per_run_ms({"tree": seconds}, 0)["tree"] is None
    finally:
        stop_process(proc, timeout=5)


def test_a_process_gone_by_the_second_reading_never_makes_cpu_negative() -> None:
    before = {1: 50, 999_999: 400}
    assert cpu.group_seconds(before, {1: 60}) == 0.0
    assert cpu.group_seconds({1: 50}, {1: 50 + cpu.TICKS_PER_S, 2: 0}) == 1.0
    assert cpu.process_ticks(2**22 + 7) == 0


def test_wait_quiet_returns_once_a_busy_tree_goes_idle() -> None:
    busy = (
        "import time\nend = time.process_time() + 0.6\n"
        "while time.process_time() < end: pass\ntime.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", busy])
    try:
        waited = cpu.wait_quiet([proc.pid], window_s=0.2, deadline_s=20)
        assert 0.2 <= waited < 20, waited
        before = cpu.read({"tree": [proc.pid]})
        assert cpu.spent(before, cpu.read({"tree": [proc.pid]}))["tree"] < 0.05
    finally:
        stop_process(proc, timeout=5)
