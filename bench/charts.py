"""The PNG charts of a bench run (matplotlib, no display needed)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "AutomateOS": "#2a7ab0",
    "n8n": "#ea4b71",
    "n8n queue": "#f29bb0",
    "LPUSH baseline": "#999999",
}


def _median(rounds: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return statistics.median(values) if values else 0.0


def throughput(results: dict[str, Any], path: Path) -> Path:
    """Ingest req/s per connection count, and runs/s per workload, per system."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    ingest = results["ingest"]
    systems = list(next(iter(ingest.values())).keys())
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        xs = [j + i * width for j in range(len(ingest))]
        ys = [_median(ingest[c][system], "rps") for c in ingest]
        left.bar(xs, ys, width, label=system, color=COLOURS.get(system))
    left.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(ingest))])
    left.set_xticklabels([f"{c} connections" for c in ingest])
    left.set_ylabel("webhooks accepted / s")
    left.set_title("Ingest (median of rounds)")
    left.legend()
    work = results["workloads"]
    systems = list(next(iter(work.values())).keys())
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        xs = [j + i * width for j in range(len(work))]
        ys = [_median(work[w][system], "runs_per_s") for w in work]
        right.bar(xs, ys, width, label=system, color=COLOURS.get(system))
    right.set_xticks([j + width * (len(systems) - 1) / 2 for j in range(len(work))])
    right.set_xticklabels(list(work))
    right.set_ylabel("runs finished / s (until all N done)")
    right.set_title("Workflows end to end")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def latency(results: dict[str, Any], path: Path) -> Path:
    """Idle 202 → finished distribution, ingest p50/p99, queue wait p50/p99."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    idle = results["idle_ms"]
    names = list(idle)
    axes[0].boxplot([idle[n] for n in names], showfliers=True)
    axes[0].set_xticks(range(1, len(names) + 1), names)
    axes[0].set_ylabel("ms")
    axes[0].set_title("Idle: webhook sent → run finished")
    ingest = results["ingest"]
    labels, p50s, p99s, colours = [], [], [], []
    for conns, by_system in ingest.items():
        for system, rounds in by_system.items():
            labels.append(f"{system}\n{conns}c")
            p50s.append(_median(rounds, "p50_ms"))
            p99s.append(_median(rounds, "p99_ms"))
            colours.append(COLOURS.get(system, "#555555"))
    xs = range(len(labels))
    axes[1].bar(xs, p99s, color=colours, alpha=0.45, label="p99")
    axes[1].bar(xs, p50s, color=colours, label="p50")
    axes[1].set_xticks(list(xs), labels, fontsize=7)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("ms (log)")
    axes[1].set_title("Ingest latency p50 (solid) / p99 (light)")
    work = results["workloads"]
    labels, p50s, p99s, colours = [], [], [], []
    for workload, by_system in work.items():
        for system, rounds in by_system.items():
            labels.append(f"{system}\n{workload}")
            p50s.append(max(0.1, _median(rounds, "queue_wait_p50_ms")))
            p99s.append(max(0.1, _median(rounds, "queue_wait_p99_ms")))
            colours.append(COLOURS.get(system, "#555555"))
    xs = range(len(labels))
    axes[2].bar(xs, p99s, color=colours, alpha=0.45)
    axes[2].bar(xs, p50s, color=colours)
    axes[2].set_xticks(list(xs), labels, fontsize=7)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("ms (log)")
    axes[2].set_title("Queue wait under load p50 / p99")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def memory(results: dict[str, Any], path: Path) -> Path:
    """Total resident memory of each system over the run, with the phases marked."""
    fig, ax = plt.subplots(figsize=(11, 4))
    for system, series in sorted(results["memory_series"].items()):
        if not series:
            continue
        ts, mbs = zip(*series, strict=True)
        ax.plot(ts, mbs, label=system, color=COLOURS.get(system))
    top = ax.get_ylim()[1]
    for t, what in results.get("memory_marks", []):
        ax.axvline(t, color="#dddddd", linewidth=0.8)
        ax.text(t, top * 0.98, what, rotation=90, fontsize=6, va="top", color="#777777")
    ax.set_xlabel("seconds into the run")
    ax.set_ylabel("resident MB (every process summed)")
    ax.set_title("Memory over the run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def scaling(results: dict[str, Any], path: Path) -> Path:
    """CPU-light runs/s against worker processes, with bare RQ no-op jobs and linear."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ours = results["scaling"]["ours"]
    xs = [p["processes"] for p in ours]
    ys = [p["runs_per_s"] for p in ours]
    ax.plot(xs, ys, "o-", label="AutomateOS CPU-light runs/s", color=COLOURS["AutomateOS"])
    if ys and ys[0]:
        ax.plot(xs, [ys[0] * x / xs[0] for x in xs], ":", color="#aaaaaa", label="linear")
    noop = results["scaling"]["rq_noop"]
    ax.plot(
        [p["processes"] for p in noop],
        [p["jobs_per_s"] for p in noop],
        "s--",
        label="bare RQ no-op jobs/s",
        color="#666666",
    )
    ax.set_xlabel("worker processes")
    ax.set_xticks(xs)
    ax.set_ylabel("per second")
    ax.set_title("Scaling with worker processes")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """Every chart that the results have data for, as name -> PNG path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = {
        "throughput": throughput(results, out_dir / "throughput.png"),
        "latency": latency(results, out_dir / "latency.png"),
        "memory": memory(results, out_dir / "memory.png"),
    }
    if results.get("scaling"):
        charts["scaling"] = scaling(results, out_dir / "scaling.png")
    return charts
