"""Our-side-only stages: profiles, worker scaling against bare RQ, and a big run history."""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import profiling
from bench.memory import Sampler, descendants
from bench.ours import ROOT, Ours
from bench.phases import direct_round, ingest_round, throughput_round
from bench.workloads import BY_NAME
from scripts.localinfra import free_port, wait_for_port


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if b"=" in item)
    return {key: value for key, _, value in pairs}


def _module_argv(argv: list[str]) -> list[str]:
    """`python -m pkg.mod --flags` → `-m pkg.mod --flags` (for pyinstrument)."""
    return argv[argv.index("-m") :]


def profile_phase(args: argparse.Namespace, ours: Ours, sampler: Sampler) -> dict[str, Any]:
    """Ingest under wrk, and one worker process draining CPU-light runs, under pyinstrument."""
    out_dir: Path = args.out
    found: dict[str, Any] = {}
    # Ingest: a second ingest process on the same stack, profiled while wrk drives it.
    port = free_port()
    env = {**ours.stack.env}
    session = out_dir / "profile-ingest.pyisession"
    ours.stop_worker()
    with profiling.profiled(["-m", "services.ingest", "--port", str(port)], env, session) as proc:
        wait_for_port(port, 60, proc)
        token_path = httpx.URL(ours.hook_url("ingest")).path
        ingest_round(args.client, f"http://127.0.0.1:{port}{token_path}", 32, 6)
    ours.discard_queue()
    found["ingest"] = _render(session, out_dir, "ingest")

    # A worker: the exact command line its supervisor gives a child, under pyinstrument.
    ours.start_worker(1, args.concurrency)
    assert ours.worker is not None
    child = next(iter(descendants(ours.worker.proc.pid)), None)
    if child is None:
        found["worker"] = {"error": "the worker supervisor had no child process"}
        return found
    argv = profiling.command_line(child)
    child_env = _environ(child)
    ours.stop_worker()
    scratch = Path(tempfile.mkdtemp(prefix="automateos-profile-"))
    child_env["PROMETHEUS_MULTIPROC_DIR"] = str(scratch / "metrics")
    (scratch / "metrics").mkdir()
    if "--run-dir" in argv:
        argv[argv.index("--run-dir") + 1] = str(scratch / "run")
        (scratch / "run").mkdir()
    session = out_dir / "profile-worker.pyisession"
    with profiling.profiled(_module_argv(argv), child_env, session, signal.SIGTERM):
        time.sleep(3)  # imports and warm-up before the load
        result = throughput_round(ours, BY_NAME["cpu"], max(100, int(300 * args.scale)))
    found["worker"] = _render(session, out_dir, "worker")
    found["worker"]["runs_per_s_profiled"] = result["runs_per_s"]
    ours.start_worker(args.processes, args.concurrency)
    return found


def _render(session: Path, out_dir: Path, name: str) -> dict[str, Any]:
    if not session.exists():
        return {"error": f"no profile session written (see {session.with_suffix('.log')})"}
    html, text = out_dir / f"profile-{name}.html", out_dir / f"profile-{name}.txt"
    body = profiling.render(session, html, text)
    session.unlink()
    session.with_suffix(".log").unlink(missing_ok=True)
    return {"html": html.name, "text": text.name, "summary": profiling.summary(body)}


def scaling_phase(args: argparse.Namespace, ours: Ours, sampler: Sampler) -> dict[str, Any]:
    """CPU-light runs/s with 1, 2, 4 worker processes, and bare RQ no-op jobs/s alike."""
    runs = max(100, int(500 * args.scale))
    if args.budget * 60 - (time.time() - args.began) < 240:
        runs = max(100, runs // 3)
        args.cuts.append(f"scaling measured with {runs} runs per point to stay within budget")
    points: list[dict[str, Any]] = []
    noop: list[dict[str, Any]] = []
    for processes in args.scaling:
        ours.start_worker(processes, args.concurrency)
        sampler.watch(ours.name, "worker", ours.worker.proc.pid if ours.worker else 0)
        # Fed straight onto the queue, as bare RQ is below: the same work for both.
        result = direct_round(ours, BY_NAME["cpu"], runs)
        result["processes"] = processes
        points.append(result)
        print(
            f"  {processes} worker processes: {result['runs_per_s']:.1f} runs/s, CPU/run worker "
            f"{result['cpu_ms_per_run_worker'] or 0:.2f} system "
            f"{result['cpu_ms_per_run_system'] or 0:.2f} ms",
            flush=True,
        )
    ours.stop_worker()
    noop_jobs = max(100, int(300 * args.scale))
    for processes in args.scaling:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.rq_baseline",
                ours.infra.redis_url,
                str(noop_jobs),
                str(processes),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        point = json.loads(done.stdout.strip().splitlines()[-1])
        noop.append(point)
        print(
            f"  bare RQ, {processes} processes: {point['jobs_per_s']:.1f} no-op jobs/s", flush=True
        )
    ours.start_worker(args.processes, args.concurrency)
    return {"runs": runs, "ours": points, "rq_noop": noop}


def _list_latency_ms(ours: Ours, samples: int = 20) -> float:
    """Median GET /workflows/{id}/runs (the newest page of the history) latency."""
    url = f"/workflows/{ours.workflows['cpu']['id']}/runs"
    times: list[float] = []
    with ours.user.client("workflows") as api:
        for _ in range(samples):
            started = time.perf_counter()
            response = api.get(url)
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def history_phase(args: argparse.Namespace, ours: Ours, sampler: Sampler) -> dict[str, Any]:
    """The same figures with a small and a large run history (bulk SQL, not the API)."""
    out: dict[str, Any] = {}
    ours.stop_worker()
    ours.db.execute("DELETE FROM run_steps")
    ours.db.execute("DELETE FROM workflow_runs")
    ours.db.execute("VACUUM ANALYZE workflow_runs")
    runs = max(100, int(500 * args.scale))
    for total in args.history:
        seconds = ours.seed_history(total)
        rows = ours.history_rows()
        print(f"  {rows} runs in history (seeded in {seconds:.0f} s)", flush=True)
        ours.stop_worker()
        rounds = [ingest_round(args.client, ours.hook_url("ingest"), 32, args.duration)]
        ours.discard_queue()
        ours.start_worker(args.processes, args.concurrency)
        cpu = throughput_round(ours, BY_NAME["cpu"], runs)
        idle = [ours.idle_latency_ms("cpu") for _ in range(max(3, args.idle_samples // 2))]
        out[str(total)] = {
            "rows": rows,
            "seed_seconds": seconds,
            "ingest": rounds[0],
            "cpu": cpu,
            "idle_ms_median": statistics.median(idle),
            "list_runs_ms_median": _list_latency_ms(ours),
        }
        print(
            f"  ingest {rounds[0]['rps']:.0f} req/s p99 {rounds[0]['p99_ms']:.1f} ms, "
            f"cpu {cpu['runs_per_s']:.1f} runs/s, idle {out[str(total)]['idle_ms_median']:.1f} ms",
            flush=True,
        )
    return out
