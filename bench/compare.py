"""AutomateOS against n8n, side by side in one run: `python -m bench.compare [--peer]`.

`make bench` runs our side and the baselines (a bare FastAPI + LPUSH for ingest, bare RQ no-op
jobs for the worker); `make bench-peer` adds n8n 2.8.4 and regenerates BENCHMARKS.md. Systems
take turns in alternating rounds so a busy machine slows both alike, and every comparison is
reported as a ratio of figures measured in the same run. Every wait is bounded; every server
binds 127.0.0.1 and is stopped by its pid.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import ingest as ingest_bench
from bench import ours as ours_mod
from bench import peer as peer_mod
from bench import peer_queue, slow_api
from bench.memory import Sampler
from bench.phases import System, idle_latencies, ingest_round, throughput_round
from bench.stages import history_phase, profile_phase, scaling_phase
from bench.workloads import WORKLOADS
from scripts.localinfra import free_port

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "LPUSH baseline"


def machine() -> dict[str, Any]:
    """What the figures were taken on, and how busy it was when we started."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    os_name = "Linux"
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip('"')
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": f"{os_name}, kernel {platform.release()}",
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg()[0],
    }


def git_commit() -> str:
    done = subprocess.run(
        ["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def worker_flags(args: argparse.Namespace, has_concurrency: bool) -> str:
    """How the worker ran, for the report."""
    flags = f"--processes {args.processes}"
    if not has_concurrency:
        return flags + " (one run at a time per process: no --concurrency on this commit)"
    if args.concurrency:
        return flags + f" --concurrency {args.concurrency}"
    return flags + " (its default --concurrency)"


def watch_all(sampler: Sampler, systems: list[Any]) -> None:
    for system in systems:
        for label, (pid, summed) in system.pids().items():
            sampler.watch(system.name, label, pid, summed)


def ingest_phase(
    args: argparse.Namespace, ours: ours_mod.Ours, peers: list[peer_mod.N8n], baseline_url: str
) -> dict[str, Any]:
    """Ingest rounds at each connection count: LPUSH baseline, ours (worker stopped), n8n."""
    out: dict[str, Any] = {}
    targets: list[tuple[str, str]] = [
        (BASELINE, baseline_url),
        (ours.name, ours.hook_url("ingest")),
    ]
    targets += [(peer.name, peer.hook_url("ingest")) for peer in peers]
    by_name = {peer.name: peer for peer in peers}
    for connections in args.connections:
        rounds: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
        for number in range(args.rounds):
            order = targets if number % 2 == 0 else list(reversed(targets))
            for name, url in order:
                peer = by_name.get(name)
                since = peer.marker() if peer is not None else 0
                result = ingest_round(args.client, url, connections, args.duration)
                if name == ours.name:
                    result["stored"] = ours.queued()
                    ours.discard_queue()
                elif name == BASELINE:
                    result["stored"] = int(ours.redis.llen(ingest_bench.BASELINE_LIST))
                    ours.redis.delete(ingest_bench.BASELINE_LIST)
                elif peer is not None:
                    result["stored"] = settle_n8n(peer, since)
                rounds[name].append(result)
                say(
                    f"ingest c={connections} round {number + 1} {name:<15} "
                    f"{result['rps']:7.0f} req/s p50 {result['p50_ms']:7.2f} ms "
                    f"p99 {result['p99_ms']:7.2f} ms stored {result['stored']} "
                    f"errors {result['errors'] + result['non_2xx']}"
                )
        out[str(connections)] = rounds
    return out


PEER_STARTS = {"regular": peer_mod.start_peer, "queue": peer_queue.start_queue_peer}


def stop_peer(starting: Future[peer_mod.N8n], pool: ThreadPoolExecutor) -> None:
    """Stop n8n once its start-up has ended, however it ended."""
    try:
        peer = starting.result(timeout=900)
    except BaseException:  # its start-up failed and cleaned up after itself
        return
    finally:
        pool.shutdown(wait=False)
    peer.stop()


def settle_n8n(peer: peer_mod.N8n, since: int, deadline_s: float = 180) -> int:
    """Wait until every execution n8n accepted in the round has stopped; return how many."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end and peer.unfinished("ingest", since):
        time.sleep(0.5)
    return peer.finished("ingest", since)[0]


def workloads_phase(
    args: argparse.Namespace, systems: list[System], sampler: Sampler
) -> dict[str, Any]:
    """Each workload in alternating rounds: N webhooks, then until the database shows N done."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {
        w.name: {s.name: [] for s in systems} for w in WORKLOADS
    }
    last_round_s = 0.0
    reserve_s = 0 if args.skip_profile else 120.0
    reserve_s += 200.0  # scaling and history, measured on a busy 2-core machine
    for number in range(args.rounds):
        round_began = time.time()
        if number and remaining(args) < last_round_s + reserve_s:
            cut(args, f"workload rounds {number + 1}-{args.rounds} skipped to stay within budget")
            break
        for workload in WORKLOADS:
            runs = max(8, int(workload.runs * args.scale))
            order = systems if number % 2 == 0 else list(reversed(systems))
            for system in order:
                sampler.mark(f"{workload.name} {system.name}")
                result = throughput_round(system, workload, runs)
                out[workload.name][system.name].append(result)
                say(
                    f"{workload.name:<5} round {number + 1} {system.name:<10} "
                    f"{result['finished']}/{result['accepted']} done in "
                    f"{result['makespan_s'] or 0:6.2f} s = {result['runs_per_s']:7.1f} runs/s "
                    f"queue wait p50 {result['queue_wait_p50_ms'] or 0:.0f} ms "
                    f"p99 {result['queue_wait_p99_ms'] or 0:.0f} ms; CPU/run worker "
                    f"{result['cpu_ms_per_run_worker'] or 0:.2f} system "
                    f"{result['cpu_ms_per_run_system'] or 0:.2f} ms"
                )
        last_round_s = time.time() - round_began
    return out


def remaining(args: argparse.Namespace) -> float:
    """Seconds left of the run's time budget (`--budget` minutes)."""
    return float(args.budget * 60 - (time.time() - args.began))


def cut(args: argparse.Namespace, what: str) -> None:
    """Note something left out to stay within the budget (it goes into the report)."""
    say(what)
    args.cuts.append(what)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every phase, in order; returns the raw results (also written as JSON)."""
    began = args.began = time.time()
    args.cuts = []
    results: dict[str, Any] = {"meta": {"machine": machine(), "commit": git_commit()}}
    base = Path(tempfile.mkdtemp(prefix="automateos-compare-"))
    base.chmod(0o755)
    sampler = Sampler().start()
    with ExitStack() as stack:
        slow_url = stack.enter_context(slow_api.serving())
        starting: list[Future[peer_mod.N8n]] = []
        for mode in args.peers if args.peer else []:
            say(f"starting n8n {peer_mod.VERSION} {mode} mode (import, publish, start) meanwhile")
            pool = ThreadPoolExecutor(1, thread_name_prefix=f"n8n-{mode}-start")
            starting.append(pool.submit(PEER_STARTS[mode], base / f"n8n-{mode}", slow_url))
            stack.callback(stop_peer, starting[-1], pool)
        say("starting AutomateOS (PostgreSQL, Redis, auth, workflows, ingest)")
        ours = stack.enter_context(ours_mod.running(base / "ours", slow_url))
        ours.start_worker(args.processes, args.concurrency)
        baseline_port = free_port()
        baseline = stack.enter_context(
            ingest_bench.serving(
                BASELINE,
                [
                    *[sys.executable, "-m", "uvicorn", "bench.ingest:create_baseline_app"],
                    *["--port", str(baseline_port), "--no-access-log", "--log-level", "warning"],
                    "--factory",
                ],
                {"REDIS_URL": ours.infra.redis_url},
                baseline_port,
            )
        )
        systems: list[Any] = [ours]
        peers = [future.result(timeout=900) for future in starting]
        for peer in peers:
            systems.append(peer)
            say(f"warming {peer.name} up")
            ingest_round(args.client, peer.hook_url("ingest"), 32, args.warmup)
            settle_n8n(peer, 0)
        ingest_round(args.client, ours.hook_url("ingest"), 32, 2)
        ingest_round(args.client, baseline.url + f"/hooks/{ingest_bench.TOKEN}", 32, 2)
        ours.discard_queue()
        ours.redis.delete(ingest_bench.BASELINE_LIST)
        watch_all(sampler, systems)
        sampler.watch(BASELINE, "baseline", baseline.proc.pid)
        results["meta"]["versions"] = {
            **{k: v for s in systems for k, v in s.versions().items()},
            "load generator": args.client,
            "worker": worker_flags(args, ours.concurrency_flag),
        }

        say("idle latency: webhook → run finished, one at a time")
        sampler.mark("idle latency")
        results["idle_ms"] = idle_latencies(systems, "cpu", args.idle_samples)
        results["memory_idle"] = {s.name: sampler.snapshot(s.name) for s in systems}

        say("ingest rounds (our worker stopped: the front door alone)")
        sampler.mark("ingest")
        ours.stop_worker()
        results["ingest"] = ingest_phase(
            args, ours, peers, f"{baseline.url}/hooks/{ingest_bench.TOKEN}"
        )
        ours.start_worker(args.processes, args.concurrency)
        watch_all(sampler, [ours])

        say("workload rounds")
        results["workloads"] = workloads_phase(args, systems, sampler)
        results["memory_peak"] = {s.name: sampler.peaks(s.name) for s in systems}
        for peer in peers:
            peer.stop()
            systems.remove(peer)
        if not args.skip_profile and remaining(args) < 300:
            cut(args, "profiles skipped to stay within budget")
        elif not args.skip_profile:
            say("profiles (pyinstrument): ingest and one worker process under load")
            sampler.mark("profiles")
            results["profiles"] = profile_phase(args, ours, sampler)
        say("scaling: worker processes, and bare RQ no-op jobs")
        sampler.mark("scaling")
        results["scaling"] = scaling_phase(args, ours, sampler)
        say("history: 10^3 vs 10^6 runs in the database")
        sampler.mark("history")
        results["history"] = history_phase(args, ours, sampler)
    sampler.stop()
    shutil.rmtree(base, ignore_errors=True)
    results["memory_series"] = {
        name: sampler.totals(name) for name in {s for _, s, _, _ in sampler.samples}
    }
    results["memory_marks"] = sampler.marks
    results["meta"]["seconds"] = time.time() - began
    results["meta"]["loadavg_at_end"] = os.getloadavg()[0]
    results["meta"]["cuts"] = args.cuts
    results["meta"]["args"] = {
        k: v for k, v in vars(args).items() if k not in ("out", "cuts", "began")
    }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--peer", action="store_true", help="also run n8n (make bench-peer)")
    parser.add_argument(
        "--peers",
        nargs="+",
        choices=sorted(PEER_STARTS),
        default=["regular", "queue"],
        help="n8n's modes to run with --peer: regular (SQLite, one process), queue (main, "
        "2 workers, PostgreSQL, Redis)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per figure")
    parser.add_argument("--duration", type=float, default=8, help="seconds per ingest round")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of n8n warm-up load")
    parser.add_argument("--connections", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every workload's N")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=None, help="runs per process (v2)")
    parser.add_argument("--scaling", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--history", type=int, nargs=2, default=[1_000, 1_000_000])
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument(
        "--budget", type=float, default=14, help="minutes: later rounds are cut to fit"
    )
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench", help="results folder")
    parser.add_argument("--report", type=Path, default=None, help="write the Markdown here")
    args = parser.parse_args(argv)
    if args.client == "auto":
        args.client = "wrk" if shutil.which("wrk") else "python"
    args.out.mkdir(parents=True, exist_ok=True)
    results = run(args)
    raw = args.out / "results.json"
    raw.write_text(json.dumps(results, indent=1, default=str))
    say(f"raw results: {raw}")
    from bench.report import write_report

    report = write_report(results, args.report or args.out / "BENCHMARKS.md", args.out)
    say(f"report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
