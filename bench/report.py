"""BENCHMARKS.md from a bench run's raw results: `python -m bench.report RESULTS.json OUT.md`.

Every ratio is a median of per-round ratios, both figures of a ratio taken in the same round.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import report_cost
from bench.phases import median_ratio
from bench.report_tables import fmt as _f
from bench.report_tables import history, ingest_raw, memory, scaling, table, work_raw
from bench.report_tables import times as _x
from bench.workloads import BY_NAME

US, PEER, BASE = "AutomateOS", "n8n", "LPUSH baseline"
DELAY_S = 5.0


def _med(rounds: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else None


def _ok(met: bool | None) -> str:
    return "—" if met is None else ("met" if met else "**missed**")


def _ratio(rounds: dict[str, list[dict[str, Any]]], key: str, a: str, b: str) -> float | None:
    if a not in rounds or b not in rounds:
        return None
    return median_ratio([r[key] for r in rounds[a]], [r[key] for r in rounds[b]])


def _services_peak(results: dict[str, Any]) -> tuple[float, float]:
    """Highest resident MB of one of our HTTP services, and of one worker process."""
    peak = results.get("memory_peak", {}).get(US, {})
    services = [mb for label, mb in peak.items() if label in ("auth", "workflows", "ingest")]
    workers = [mb for label, mb in peak.items() if label.startswith("worker child")]
    return max(services, default=0.0), max(workers, default=0.0)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for each target of issue 11."""
    ingest32 = results["ingest"].get("32", {})
    work = results["workloads"]
    rows: list[tuple[str, str, bool | None]] = []
    base = _ratio(ingest32, "rps", US, BASE)
    rows.append(
        (
            "ingest ≥ 0.8 × LPUSH baseline (one process each, 32 connections)",
            _x(base),
            None if base is None else base >= 0.8,
        )
    )
    peer = _ratio(ingest32, "rps", US, PEER)
    rows.append(
        ("ingest ≥ 20 × n8n (32 connections)", _x(peer), None if peer is None else peer >= 20)
    )
    p99 = _med(ingest32.get(US, []), "p99_ms")
    rows.append(
        (
            "ingest p99 ≤ 50 ms at 32 connections",
            _f(p99, 1, " ms")
            + f" (LPUSH baseline, same rounds: {_f(_med(ingest32.get(BASE, []), 'p99_ms'), 1)} ms)",
            None if p99 is None else p99 <= 50,
        )
    )
    for name, floor in (("cpu", 3.0), ("io", 1.5)):
        ratio = _ratio(work.get(name, {}), "runs_per_s", US, PEER)
        rows.append(
            (
                f"{name} runs/s ≥ {floor} × n8n (default worker)",
                _x(ratio),
                None if ratio is None else ratio >= floor,
            )
        )
    delay = _med(work.get("delay", {}).get(US, []), "makespan_s")
    rows.append(
        (
            f"40 × delay {DELAY_S:.0f} s all done within {1.3 * DELAY_S:.1f} s",
            _f(delay, 1, " s"),
            None if delay is None else delay <= 1.3 * DELAY_S,
        )
    )
    service, worker = _services_peak(results)
    rows.append(
        (
            "each service ≤ 120 MB resident under load",
            _f(service, 0, " MB (highest)"),
            service <= 120 if service else None,
        )
    )
    rows.append(
        (
            "a worker process ≤ 150 MB at full concurrency",
            _f(worker, 0, " MB (highest)"),
            worker <= 150 if worker else None,
        )
    )
    scaling = {p["processes"]: p["runs_per_s"] for p in results.get("scaling", {}).get("ours", [])}
    if scaling.get(1) and scaling.get(2):
        gain = scaling[2] / scaling[1]
        rows.append(("1 → 2 worker processes ≥ 1.7 × throughput", _x(gain), gain >= 1.7))
    return rows


def _ingest_cell(rounds: list[dict[str, Any]] | None) -> str:
    if not rounds:
        return "—"
    rps, p50, p99 = (_med(rounds, key) for key in ("rps", "p50_ms", "p99_ms"))
    return f"{_f(rps)}; {_f(p50, 1)} / {_f(p99, 1)} ms"


def _headline(results: dict[str, Any]) -> list[str]:
    """Ours beside each n8n mode measured (regular, queue), each with its same-run ratio."""
    modes = report_cost.peers(results) or [PEER]
    rows: list[list[str]] = []
    for conns, rounds in results["ingest"].items():
        row = [f"ingest, {conns} connections (req/s; p50 / p99)", _ingest_cell(rounds.get(US))]
        for peer in modes:
            row += [_ingest_cell(rounds.get(peer)), _x(_ratio(rounds, "rps", US, peer))]
        rows.append(row)
    for name, rounds in results["workloads"].items():
        runs = rounds.get(US, [{}])[0].get("sent", 0)
        row = [
            f"{name}: {BY_NAME[name].title}, {runs} webhooks (runs/s)",
            _f(_med(rounds.get(US, []), "runs_per_s"), 1),
        ]
        for peer in modes:
            row += [
                _f(_med(rounds.get(peer, []), "runs_per_s"), 1) if peer in rounds else "—",
                _x(_ratio(rounds, "runs_per_s", US, peer)),
            ]
        rows.append(row)
        if any("cpu_ms_per_run_system" in r for r in rounds.get(US, [])):
            row = [
                f"{name}: whole-system CPU per run (ms; lower is better)",
                _f(_med(rounds.get(US, []), "cpu_ms_per_run_system"), 2),
            ]
            for peer in modes:
                cost = _ratio(rounds, "cpu_ms_per_run_system", peer, US)
                row += [
                    _f(_med(rounds.get(peer, []), "cpu_ms_per_run_system"), 2),
                    _x(cost) + " (theirs ÷ ours)" if cost else "—",
                ]
            rows.append(row)
    idle = results["idle_ms"]
    us_idle = statistics.median(idle[US])
    row = [
        f"idle: one webhook → run finished (median of {len(idle[US])}, ms; lower is better)",
        _f(us_idle, 1),
    ]
    for peer in modes:
        peer_idle = statistics.median(idle[peer]) if peer in idle else None
        row += [
            _f(peer_idle, 1),
            _x(peer_idle / us_idle) + " (theirs ÷ ours)" if peer_idle else "—",
        ]
    rows.append(row)
    total = {s: sum(v.values()) for s, v in results.get("memory_peak", {}).items()}
    if total:
        row = ["resident memory at peak, every process summed (MB; lower is better)"]
        row.append(_f(total.get(US)))
        for peer in modes:
            theirs = total.get(peer)
            row += [_f(theirs), _x(theirs / total[US]) + " (theirs ÷ ours)" if theirs else "—"]
        rows.append(row)
    header = ["figure", US]
    for peer in modes:
        header += [PEER_TITLES.get(peer, peer), "ratio (same run)"]
    return table(header, rows)


PEER_TITLES = {PEER: "n8n 2.8.4", "n8n queue": "n8n 2.8.4 queue mode"}


def write_report(results: dict[str, Any], path: Path, out_dir: Path) -> Path:
    """Charts into `out_dir`, the Markdown into `path`; returns `path`."""
    from bench import charts

    drawn = charts.draw_all(results, out_dir)
    rel = os.path.relpath(out_dir, path.parent)
    meta = results["meta"]
    m = meta["machine"]
    peer = PEER in results["idle_ms"]
    busy = max(m["loadavg_at_start"], meta.get("loadavg_at_end", 0)) > 0.5 * (m["cores"] or 1)
    lines = [
        "# Benchmarks: AutomateOS "
        + ("against n8n, side by side" if peer else "and its baselines"),
        "",
        f"Generated by `{'make bench-peer' if peer else 'make bench'}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} at commit `{meta['commit']}`, "
        f"in {meta['seconds'] / 60:.1f} minutes. Raw numbers: "
        f"[{rel}/results.json]({rel}/results.json).",
        "",
    ]
    if busy:
        lines += [
            f"> **Taken on a busy machine**: load average {m['loadavg_at_start']:.1f} at the start "
            f"and {meta.get('loadavg_at_end', 0):.1f} at the end on {m['cores']} cores, shared "
            "with other engineers' test runs. Absolute figures swing from run to run; the ratios, "
            "each from two systems measured in the same alternating round, are the figures to "
            "quote.",
            "",
        ]
    if meta.get("cuts"):
        lines += ["> Cut to stay within the time budget (`--budget`):", ">"]
        lines += [f"> - {what}" for what in meta["cuts"]]
        lines += [""]
    lines += ["## Headline", "", *_headline(results), ""]
    if peer:
        lines += [f"> {report_cost.published(results)}", ""]
    lines += ["## Cost: CPU per run beside runs/s", "", *report_cost.cost_table(results), ""]
    lines += ["## Targets (issue 15)", ""]
    lines += table(
        ["target", "measured", ""],
        [[t, v, _ok(ok)] for t, v, ok in report_cost.targets(results, report_cost.load_baseline())],
    )
    lines += ["", "## Targets (issue 11)", ""]
    lines += table(["target", "measured", ""], [[t, v, _ok(ok)] for t, v, ok in targets(results)])
    lines += ["", *(f"![{name}]({rel}/{p.name})" for name, p in drawn.items()), ""]
    lines += ["## Machine and versions", ""]
    lines += table(
        ["", ""],
        [
            ["CPU", f"{m['cpu']}, {m['cores']} cores"],
            ["memory", f"{m['memory_gib']} GiB"],
            ["OS", m["os"]],
            ["Python", m["python"]],
            *([k, str(v)] for k, v in meta.get("versions", {}).items()),
        ],
    )
    args = meta.get("args", {})
    lines += [
        "",
        "## How it was measured",
        "",
        METHOD.format(
            rounds=args.get("rounds"),
            duration=args.get("duration"),
            connections=", ".join(map(str, args.get("connections", []))),
        ),
        "",
    ]
    lines += ["## Ingest, every round", "", *ingest_raw(results), ""]
    lines += ["## Workflows end to end, every round", "", *work_raw(results), ""]
    idle = results["idle_ms"]
    lines += ["## Idle latency (ms, every sample)", ""]
    lines += [
        f"- {s}: median {statistics.median(v):.1f}, min {min(v):.1f}, max {max(v):.1f}: "
        + ", ".join(f"{x:.0f}" for x in v)
        for s, v in idle.items()
    ]
    lines += ["", "## Resident memory per process", "", *memory(results), ""]
    lines += ["## Scaling with worker processes (ours)", "", *scaling(results), ""]
    lines += ["## Run history: 10^3 against 10^6 runs (ours)", "", *history(results), ""]
    lines += ["## Profiles", ""]
    for name, profile in results.get("profiles", {}).items():
        if "error" in profile:
            lines += [f"- {name}: {profile['error']}"]
            continue
        lines += [
            f"### {name} ([text]({rel}/{profile['text']}); `{profile['html']}` beside it)",
            "",
            "```",
            profile["summary"],
            "```",
            "",
        ]
    # The before-v3 figures are taken once, by hand (see the section); a rerun keeps them.
    lines += report_cost.kept_section(path)
    path.write_text("\n".join(lines) + "\n")
    return path


METHOD = """\
- One script (`python -m bench.compare`, see `bench/`) starts both systems on this machine,
  loopback only, and drives them with the same load generator (`bench/ingest.py`: wrk for timed
  rounds, its asyncio keep-alive client for exactly N webhooks). Systems take turns in
  {rounds} alternating rounds (order reversed every round) and every ratio is the median of the
  per-round ratios.
- AutomateOS runs as `make up` runs it: PostgreSQL with fsync on, Redis with its append-only
  file (`everysec`), auth, workflows, ingest (one process) and the worker supervisor, started
  by the project's own fixtures (tests/fixtures). n8n 2.8.4 runs as its docs recommend for
  production (`NODE_ENV=production`, logs at warn, every execution saved with its data, default
  pruning), telemetry off, workflows imported and published from its CLI, each Webhook node
  answering on receipt (as our 202 does), in two set-ups: regular mode (one process, SQLite,
  executions run inside the process that takes the webhook) and queue mode (its main process,
  2 `n8n worker` processes at their default 10 executions each, PostgreSQL and Redis started
  for it on ports of their own, as durable as ours).
- CPU per run: utime + stime (+ what reaped children used) from `/proc/<pid>/stat` of every
  process of a system, read before a workload's first webhook and once all its runs show
  finished, divided by the runs finished (bench/cpu.py). Whole system = ours: auth, workflows,
  ingest, the worker supervisor with its worker and render processes, PostgreSQL (postmaster
  and backends), Redis; n8n regular: its process and its task runner; n8n queue: main, workers
  (with their task runners), PostgreSQL, Redis. "Worker" = our worker supervisor's tree, n8n's
  workers in queue mode, its one process in regular mode. The load generator and the 200 ms
  API are in neither.
- Ingest: {duration} s wrk rounds at {connections} connections against the same workflow.
  Ours is measured with the worker stopped (the front door alone; the queue is then discarded);
  the LPUSH baseline is a bare FastAPI route doing one `LPUSH` on the same Redis. n8n has no
  separate front door in regular mode: its figure includes running the executions it accepts.
  "stored" is what each system kept: jobs on our queue, list entries, n8n executions.
- Workflows: N webhooks over the stated connections, then the system's own database is polled
  until all N show finished (ours: `workflow_runs`, n8n: `execution_entity`); runs/s = finished
  / (last finish − first send). Queue wait = accepted → started (ours) and createdAt →
  startedAt (n8n). "missing" would be accepted webhooks that never finished.
- Idle latency: one webhook at a time, the systems alternating, from just before the request
  (sent on a kept-alive connection, bench/idle.py) to the run's finish time as recorded in the
  system's database. Reports before 2026-12-07 counted the sender building a new HTTP client
  (about 27 ms) in every sample, for both systems.
- Memory: VmRSS of every process (PostgreSQL's backends summed as one) sampled every 0.5 s.
- Scaling, bare RQ, history and profiles are ours only (n8n queue mode's scaling is adding
  workers; it runs here with its 2). Bare RQ: `SimpleWorker`s draining no-op jobs put on
  their queue up front. Our scaling rounds are fed the same way: the CPU-light workflow's jobs
  put straight on the run queue through the enqueue API (no webhooks, so no sender or ingest
  on the same cores), timed from the first enqueue to the last run's recorded finish.
  History rows are inserted with one `generate_series` statement (two steps per run).
- Profiles: pyinstrument (py-spy cannot read this machine's pyenv Python) around a second
  ingest process driven by wrk, and around one worker process started with exactly the command
  line its supervisor gives it, draining CPU-light runs. Times are wall-clock, so idle waits
  show. pyinstrument samples the main thread only: in the worker that is RQ's loop (dequeue,
  job bookkeeping); the engine's event-loop thread, where the nodes run, is not in it. The
  text profiles are committed; the interactive HTML ones (~1 MB each) are written beside them
  by every run and not committed."""


if __name__ == "__main__":
    data = json.loads(Path(sys.argv[1]).read_text())
    target = Path(sys.argv[2])
    print(write_report(data, target, Path(sys.argv[1]).parent))
