"""BENCHMARKS.md's cost sections: CPU per run beside runs/s, issue 15's targets, n8n's own figure.

Every ratio is a median of per-round ratios, both figures of a ratio from the same round. The
"before engine v3" figures the worker-CPU target compares with are kept in
bench/baselines/engine-v2.json (taken with `bench.worker --stages cost` and `bench.compare`).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from bench.peer import PUBLISHED, PUBLISHED_RUNS_PER_S
from bench.phases import median_ratio
from bench.report_tables import fmt, table, times

US = "AutomateOS"
PEERS = ("n8n", "n8n queue")
BASELINE_FILE = Path(__file__).resolve().parent / "baselines" / "engine-v2.json"
BASELINE_HEADING = "## Before engine v3 (baseline)"
SLOW_API_S = 0.2
WORKLOAD_TITLES = {"cpu": "CPU-light", "io": "I/O-bound"}


def _med(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ratio(rounds: dict[str, list[dict[str, Any]]], key: str, a: str, b: str) -> float | None:
    if a not in rounds or b not in rounds:
        return None
    return median_ratio([r.get(key) or 0 for r in rounds[a]], [r.get(key) or 0 for r in rounds[b]])


def peers(results: dict[str, Any]) -> list[str]:
    """The n8n modes this run measured."""
    seen = {s for rounds in results["workloads"].values() for s in rounds}
    return [p for p in PEERS if p in seen]


def cost_table(results: dict[str, Any]) -> list[str]:
    """Per workload and system: runs/s, worker and whole-system CPU per run, ratios to ours."""
    rows: list[list[str]] = []
    for name, rounds in results["workloads"].items():
        for system in (US, *peers(results)):
            if system not in rounds:
                continue
            r = rounds[system]
            ours = system == US
            rows.append(
                [
                    name,
                    system,
                    fmt(_med(r, "runs_per_s"), 1),
                    fmt(_med(r, "cpu_ms_per_run_worker"), 2),
                    fmt(_med(r, "cpu_ms_per_run_system"), 2),
                    "" if ours else times(_ratio(rounds, "runs_per_s", US, system)),
                    "" if ours else times(_ratio(rounds, "cpu_ms_per_run_system", system, US)),
                ]
            )
    return table(
        [
            "workload",
            "system",
            "runs/s",
            "worker CPU ms/run",
            "whole-system CPU ms/run",
            "ours ÷ theirs, runs/s",
            "theirs ÷ ours, CPU/run",
        ],
        rows,
    )


def published(results: dict[str, Any]) -> str:
    """n8n's own single-instance figure beside what its regular mode did here."""
    cpu = results["workloads"].get("cpu", {})
    here = ", ".join(
        f"{system} {fmt(_med(cpu[system], 'runs_per_s'), 1)}"
        for system in (*peers(results), US)
        if system in cpu
    )
    regular = _med(cpu.get(PEERS[0], []), "runs_per_s")
    share = (
        f" (n8n regular mode: {regular / PUBLISHED_RUNS_PER_S:.2f} × its figure)" if regular else ""
    )
    return (
        f"n8n's documentation states {PUBLISHED}. Here, "
        f"CPU-light runs/s (webhook → set → filter, one node more): {here}{share}. Their "
        "machine is not ours: the figure is context, the ratios above are the comparison."
    )


def _default_concurrency() -> int:
    from services.worker.config import WorkerSettings

    return int(WorkerSettings.model_fields["concurrency"].default)


def load_baseline(path: Path = BASELINE_FILE) -> dict[str, Any]:
    """The before-v3 figures, or nothing when they were never taken."""
    return json.loads(path.read_text()) if path.exists() else {}


def targets(
    results: dict[str, Any], baseline: dict[str, Any]
) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each measurable target of issue 15."""
    work = results["workloads"]
    rows: list[tuple[str, str, bool | None]] = []
    before = baseline.get("compare", {})
    load = baseline.get("meta", {}).get("loadavg_at_start")
    caveat = f", taken at load {load:.0f}" if load is not None and load > 2 else ""
    for name, title in WORKLOAD_TITLES.items():
        now = _med(work.get(name, {}).get(US, []), "cpu_ms_per_run_worker")
        was = before.get(name, {}).get("cpu_ms_per_run_worker")
        ratio = now / was if now is not None and was else None
        rows.append(
            (
                f"{title}: worker CPU per run ≤ 0.5 × before v3 ({fmt(was, 2)} ms{caveat})",
                f"{fmt(now, 2)} ms = {times(ratio)}",
                None if ratio is None else ratio <= 0.5,
            )
        )
    args = results["meta"].get("args", {})
    processes = int(args.get("processes") or 2)
    concurrency = int(args.get("concurrency") or _default_concurrency())
    ceiling = processes * concurrency / SLOW_API_S
    io = _med(work.get("io", {}).get(US, []), "runs_per_s")
    rows.append(
        (
            f"I/O-bound runs/s ≥ 0.8 × slot ceiling ({processes} × {concurrency} ÷ 0.2 s = "
            f"{ceiling:.0f}/s)",
            f"{fmt(io, 1)} = {times(io / ceiling if io else None)}",
            None if io is None else io >= 0.8 * ceiling,
        )
    )
    scaling = results.get("scaling", {})
    ours = {p["processes"]: p["runs_per_s"] for p in scaling.get("ours", [])}
    noop = {p["processes"]: p["jobs_per_s"] for p in scaling.get("rq_noop", [])}
    for processes in sorted(set(ours) & set(noop)):
        gain = ours[processes] / noop[processes] if noop[processes] else None
        rows.append(
            (
                f"CPU-light runs/s ≥ 2 × bare RQ no-op jobs/s, {processes} worker "
                f"process{'es' if processes > 1 else ''}",
                f"{fmt(ours[processes], 1)} vs {fmt(noop[processes], 1)} = {times(gain)}",
                None if gain is None else gain >= 2,
            )
        )
    if ours.get(2) and ours.get(4):
        rows.append(
            (
                "4 worker processes never slower than 2 (CPU-light)",
                times(ours[4] / ours[2]),
                ours[4] >= ours[2],
            )
        )
    idle = results.get("idle_ms", {}).get(US)
    if idle:
        median = statistics.median(idle)
        rows.append(("idle webhook → finished, median ≤ 6 ms", fmt(median, 1, " ms"), median <= 6))
    for peer in peers(results):
        for name, title in WORKLOAD_TITLES.items():
            rounds = work.get(name, {})
            speed = _ratio(rounds, "runs_per_s", US, peer)
            rows.append(
                (
                    f"{title}: ≥ 4 × {peer} runs/s",
                    times(speed),
                    None if speed is None else speed >= 4,
                )
            )
            cost = _ratio(rounds, "cpu_ms_per_run_system", US, peer)
            rows.append(
                (
                    f"{title}: ≤ ¼ of {peer}'s whole-system CPU per run",
                    times(cost),
                    None if cost is None else cost <= 0.25,
                )
            )
    return rows


def kept_section(path: Path, heading: str = BASELINE_HEADING) -> list[str]:
    """A hand-kept section of an existing report (heading to the next `## `), to carry over."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    if heading not in lines:
        return []
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = lines[start:end]
    while section and not section[-1].strip():
        section.pop()
    return [*section, ""]
