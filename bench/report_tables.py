"""The raw-number tables of BENCHMARKS.md: every round, every process, every point."""

from __future__ import annotations

from typing import Any


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    """A number with thousands separators, or a dash for none."""
    if value is None:
        return "—"
    return f"{value:,.{digits}f}{unit}"


def times(value: float | None) -> str:
    """A ratio in bold, or a dash for none."""
    return "—" if value is None else f"**{value:.2f}×**"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def ingest_raw(results: dict[str, Any]) -> list[str]:
    rows = []
    for conns, by_system in results["ingest"].items():
        for system, rounds in by_system.items():
            for number, r in enumerate(rounds, 1):
                rows.append(
                    [
                        conns,
                        str(number),
                        system,
                        fmt(r["rps"]),
                        fmt(r["p50_ms"], 2),
                        fmt(r["p99_ms"], 2),
                        str(r["requests"]),
                        str(r.get("stored", "—")),
                        str(r["errors"] + r["non_2xx"]),
                    ]
                )
    return table(
        [
            "connections",
            "round",
            "system",
            "req/s",
            "p50 ms",
            "p99 ms",
            "answered",
            "stored",
            "errors / non-2xx",
        ],
        rows,
    )


def work_raw(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, by_system in results["workloads"].items():
        for system, rounds in by_system.items():
            for number, r in enumerate(rounds, 1):
                rows.append(
                    [
                        name,
                        str(number),
                        system,
                        f"{r['finished']}/{r['accepted']}",
                        str(r["missing"]),
                        fmt(r["makespan_s"], 2),
                        fmt(r["runs_per_s"], 1),
                        fmt(r["queue_wait_p50_ms"], 0),
                        fmt(r["queue_wait_p99_ms"], 0),
                        fmt(r.get("cpu_ms_per_run_worker"), 2),
                        fmt(r.get("cpu_ms_per_run_system"), 2),
                    ]
                )
    return table(
        [
            "workload",
            "round",
            "system",
            "finished/accepted",
            "missing",
            "all done (s)",
            "runs/s",
            "queue wait p50 ms",
            "p99 ms",
            "worker CPU ms/run",
            "system CPU ms/run",
        ],
        rows,
    )


def memory(results: dict[str, Any]) -> list[str]:
    rows = []
    for system, peaks in results.get("memory_peak", {}).items():
        idle = results.get("memory_idle", {}).get(system, {})
        for label in sorted(peaks):
            rows.append([system, label, fmt(idle.get(label)), fmt(peaks[label])])
    return table(["system", "process", "idle MB", "peak MB"], rows)


def scaling(results: dict[str, Any]) -> list[str]:
    scaling = results.get("scaling")
    if not scaling:
        return ["(not run)"]
    noop = {p["processes"]: p["jobs_per_s"] for p in scaling["rq_noop"]}
    rows = []
    first = scaling["ours"][0]["runs_per_s"] if scaling["ours"] else 0
    for point in scaling["ours"]:
        p = point["processes"]
        rows.append(
            [
                str(p),
                fmt(point["runs_per_s"], 1),
                times(point["runs_per_s"] / first if first else None),
                fmt(point.get("cpu_ms_per_run_worker"), 2),
                fmt(point.get("cpu_ms_per_run_system"), 2),
                fmt(noop.get(p), 1),
                fmt(point["queue_wait_p99_ms"], 0),
            ]
        )
    return table(
        [
            "worker processes",
            "CPU-light runs/s",
            "vs 1 process",
            "worker CPU ms/run",
            "whole-system CPU ms/run",
            "bare RQ no-op jobs/s",
            "queue wait p99 ms",
        ],
        rows,
    )


def history(results: dict[str, Any]) -> list[str]:
    rows = []
    for _total, h in results.get("history", {}).items():
        rows.append(
            [
                f"{h['rows']:,}",
                fmt(h["ingest"]["rps"]),
                fmt(h["ingest"]["p50_ms"], 2),
                fmt(h["ingest"]["p99_ms"], 2),
                fmt(h["cpu"]["runs_per_s"], 1),
                fmt(h["idle_ms_median"], 1),
                fmt(h["list_runs_ms_median"], 1),
                fmt(h["seed_seconds"], 0),
            ]
        )
    return table(
        [
            "runs in history",
            "ingest req/s (32c)",
            "p50 ms",
            "p99 ms",
            "CPU-light runs/s",
            "idle 202→finished ms",
            "GET runs page ms",
            "seeded in s",
        ],
        rows,
    )
