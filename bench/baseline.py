"""Keep a "before" figure: `python -m bench.baseline COMPARE_RESULTS.json WORKER_COST.json`.

Reads a `bench.compare` results file and a `bench.worker --stages cost --json` file taken on
the same commit, writes their cost figures to bench/baselines/engine-v2.json (which the report's
issue-15 targets compare with) and prints the BENCHMARKS.md section that states them.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.report_cost import BASELINE_FILE, BASELINE_HEADING, US, WORKLOAD_TITLES
from bench.report_tables import fmt, table

KEYS = ("runs_per_s", "cpu_ms_per_run_worker", "cpu_ms_per_run_system")


def _median(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def from_compare(results: dict[str, Any]) -> dict[str, Any]:
    """Ours' medians per workload, and the scaling points, of a bench.compare run."""
    out: dict[str, Any] = {
        name: {key: _median(rounds.get(US, []), key) for key in KEYS}
        for name, rounds in results["workloads"].items()
    }
    out["scaling"] = [
        {k: p.get(k) for k in ("processes", *KEYS)}
        for p in results.get("scaling", {}).get("ours", [])
    ]
    return out


def section(baseline: dict[str, Any]) -> list[str]:
    """The BENCHMARKS.md section stating the before figures and how they were taken."""
    compare, worker = baseline["compare"], baseline["worker"]
    meta = baseline["meta"]
    rows = [
        [
            f"{WORKLOAD_TITLES.get(name, name)} (`bench.compare`, webhooks, "
            f"{meta['processes']} processes)",
            fmt(compare[name]["runs_per_s"], 1),
            fmt(compare[name]["cpu_ms_per_run_worker"], 2),
            fmt(compare[name]["cpu_ms_per_run_system"], 2),
        ]
        for name in WORKLOAD_TITLES
        if name in compare
    ]
    rows += [
        [
            f"CPU-light, {p['processes']} worker process{'es' if p['processes'] > 1 else ''} "
            "(`bench.compare` scaling)",
            fmt(p["runs_per_s"], 1),
            fmt(p["cpu_ms_per_run_worker"], 2),
            fmt(p["cpu_ms_per_run_system"], 2),
        ]
        for p in compare.get("scaling", [])
    ]
    rows += [
        [
            f"{c['workload']}, {c['processes']} × {c['concurrency']} "
            "(`bench.worker`, queued directly)",
            fmt(c["runs_per_s"], 1),
            fmt(c["worker_ms"], 2),
            fmt(c["system_ms"], 2),
        ]
        for c in worker["costs"]
    ]
    return [
        BASELINE_HEADING,
        "",
        f"Engine v2 as merged on `main` at `{meta['service_commit']}`, measured {meta['date']} "
        "with the scripts that measure v3 (`bench.compare` for the webhook path, `bench.worker "
        '--stages cost` for the worker alone), so the issue-15 target "worker CPU per run ≤ 0.5 × '
        "today's\" compares like with like; the report's targets read these figures from "
        "`bench/baselines/engine-v2.json`.",
        "",
        "> **Taken on a shared machine**: load average at the start "
        f"{meta['loads']} on {meta['cores']} cores, with other engineers' builds and tests "
        "running beside it. Runs/s are below a quiet machine's and CPU per run is somewhat "
        "inflated (cache contention, the idle worker's polling spread over slower rounds); "
        f"short rounds ({meta['runs']}). Retake on a quiet machine before quoting a ratio: in a "
        f"worktree of `{meta['service_commit']}` with this branch's bench/, run "
        "`python -m bench.compare --skip-profile --out D` and "
        "`python -m bench.worker --stages cost --json F`, then "
        f"`python -m bench.baseline D/results.json F {meta['service_commit']}`.",
        "",
        *table(["what", "runs/s", "worker CPU ms/run", "whole-system CPU ms/run"], rows),
        "",
        "Whole system: for `bench.compare` every process of the stack (auth, workflows, ingest, "
        "worker supervisor with its worker and render processes, PostgreSQL, Redis); for "
        "`bench.worker` the worker, PostgreSQL and Redis (no HTTP service takes part).",
        "",
    ]


def main(argv: list[str]) -> int:
    compare = json.loads(Path(argv[0]).read_text())
    worker = json.loads(Path(argv[1]).read_text())
    args = compare["meta"].get("args", {})
    baseline = {
        "meta": {
            "date": worker["meta"]["date"],
            "service_commit": argv[2] if len(argv) > 2 else compare["meta"]["commit"],
            "bench_commit": compare["meta"]["commit"],
            "cores": compare["meta"]["machine"]["cores"],
            "loadavg_at_start": max(
                compare["meta"]["machine"]["loadavg_at_start"], worker["meta"]["loadavg_at_start"]
            ),
            "loads": f"{compare['meta']['machine']['loadavg_at_start']:.1f} (bench.compare) and "
            f"{worker['meta']['loadavg_at_start']:.1f} (bench.worker)",
            "processes": args.get("processes"),
            "runs": f"bench.compare --scale {args.get('scale')}, "
            f"bench.worker {sorted({c['runs'] for c in worker['costs']})} runs per burst",
        },
        "compare": from_compare(compare),
        "worker": worker,
    }
    BASELINE_FILE.parent.mkdir(parents=True, exist_ok=True)
    BASELINE_FILE.write_text(json.dumps(baseline, indent=1) + "\n")
    print("\n".join(section(baseline)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
