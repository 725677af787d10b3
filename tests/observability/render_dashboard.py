"""Render the Grafana dashboard's panels from live data into a PNG, without Grafana.

    python -m tests.observability.render_dashboard docs/dashboard.png

Runs what `make metrics-test` runs (PostgreSQL, Redis, every service, Prometheus, the traffic),
asks Prometheus for each panel query over the traffic's time range, lays the panels out on the
dashboard's own grid as HTML + SVG, and screenshots it with headless Chromium (Debian's
`chromium`). It is a picture for the docs, not a test: Grafana draws the real thing.
"""

from __future__ import annotations

import argparse
import html
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.fixtures.servers import running_infra
from tests.fixtures.stack import running_stack, stack_env
from tests.observability import traffic
from tests.observability.prometheus import Prometheus, running_prometheus
from tests.observability.promql import ALERTS, COMPONENTS, load_dashboard, substitute

WIDTH = 1600
ROW_UNIT = 34  # pixels per grid height unit
COLOURS = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#ff9830"]
Series = tuple[str, list[tuple[float, float]]]
CSS = """
body { margin:0; background:#111217; font-family:'DejaVu Sans', sans-serif; color:#ccccdc; }
.head { height:40px; padding:10px 14px; font-size:20px; }
.head small { color:#8e8e8e; font-size:13px; }
.panel { position:absolute; background:#181b1f; border:1px solid #2c3235; border-radius:3px;
  overflow:hidden; }
.row { position:absolute; font-size:15px; font-weight:bold; padding-top:6px; }
.title { font-size:13px; font-weight:bold; padding:6px 8px; }
svg { margin-left:8px; }
.axis { fill:#8e8e8e; font-size:10px; }
.legend { font-size:11px; padding:0 8px; }
.legend span { margin-right:12px; white-space:nowrap; }
.legend i, .bar i { display:inline-block; width:10px; height:3px; margin-right:4px;
  vertical-align:middle; }
.stat { font-size:44px; text-align:center; color:#73bf69; padding-top:28px; }
.empty { color:#8e8e8e; text-align:center; padding-top:40px; }
.bars { padding:4px 10px; font-size:12px; }
.bar { margin:3px 0; }
.bar span { display:inline-block; width:34%; }
.bar i { height:10px; }
.bar b { margin-left:6px; }
"""


def _colour(index: int) -> str:
    return COLOURS[index % len(COLOURS)]


def _legend(template: str, labels: dict[str, str]) -> str:
    text = template
    for key, value in labels.items():
        text = text.replace("{{" + key + "}}", value)
    return text.replace("{{", "").replace("}}", "") or "value"


def _fetch(prom: Prometheus, panel: dict[str, Any], start: float, end: float) -> list[Series]:
    found: list[Series] = []
    for target in panel.get("targets", []):
        window = f"{int(end - start) + 5}s" if "$__range" in target["expr"] else "15s"
        expr = substitute(target["expr"], {"job": ".+"}, window)
        data = prom.api("query_range", query=expr, start=start, end=end, step=1)
        for result in data["result"]:
            points = [(float(t), float(v)) for t, v in result["values"] if math.isfinite(float(v))]
            if points:
                found.append((_legend(target.get("legendFormat", ""), result["metric"]), points))
    return found


def _format(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "bytes":
        return f"{value / 2**20:.0f} MiB"
    if unit in ("reqps", "ops"):
        return f"{value:.1f}/s"
    return f"{value:.3g}"


def _timeseries_svg(series: list[Series], width: int, height: int, unit: str) -> str:
    left, bottom = 64, 18
    plot_w, plot_h = width - left - 8, height - bottom - 6
    xs = [t for _, pts in series for t, _ in pts]
    ys = [v for _, pts in series for _, v in pts]
    x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y1 = max(ys) * 1.1 if max(ys) > 0 else 1.0
    parts = [f'<svg width="{width}" height="{height}">']
    for i in range(5):
        y = 6 + plot_h * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#2c3235"/>'
        )
        label = _format(y1 * (4 - i) / 4, unit)
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{label}</text>'
        )
    for index, (_, points) in enumerate(series):
        path = " ".join(
            f"{left + plot_w * (t - x0) / (x1 - x0):.1f},{6 + plot_h * (1 - v / y1):.1f}"
            for t, v in points
        )
        colour = _colour(index)
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.6"/>'
        )
    span = int(x1 - x0)
    parts.append(
        f'<text x="{left}" y="{height - 3}" class="axis">-{span}s</text>'
        f'<text x="{left + plot_w}" y="{height - 3}" class="axis" text-anchor="end">now</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _panel_html(panel: dict[str, Any], series: list[Series], width: int, height: int) -> str:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    title = html.escape(panel["title"])
    body_h = height - 34
    if not series:
        body = '<div class="empty">No data</div>'
    elif panel["type"] == "stat":
        total = sum(points[-1][1] for _, points in series)
        body = f'<div class="stat">{_format(total, unit)}</div>'
    elif panel["type"] == "piechart":
        last = sorted(((name, pts[-1][1]) for name, pts in series), key=lambda x: -x[1])
        whole = sum(v for _, v in last) or 1
        rows = "".join(
            f'<div class="bar"><span style="color:{_colour(i)}">{html.escape(n)}</span>'
            f'<i style="width:{60 * v / whole:.1f}%;background:{_colour(i)}"></i>'
            f"<b>{v:.0f}</b></div>"
            for i, (n, v) in enumerate(last)
        )
        body = f'<div class="bars">{rows}</div>'
    else:
        legend_rows = min(len(series), 6)
        graph_h = body_h - 16 * math.ceil(legend_rows / 3) - 4
        legend = "".join(
            f'<span><i style="background:{_colour(i)}"></i>{html.escape(name)}</span>'
            for i, (name, _) in enumerate(series[:legend_rows])
        )
        body = (
            _timeseries_svg(series, width - 16, graph_h, unit)
            + f'<div class="legend">{legend}</div>'
        )
    return f'<div class="title">{title}</div>{body}'


def render_html(prom: Prometheus, start: float, end: float) -> tuple[str, int]:
    """The dashboard as one HTML page, and its height in pixels."""
    dashboard = load_dashboard()
    col = WIDTH / 24
    blocks = []
    bottom = 0
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"] * col, grid["y"] * ROW_UNIT, grid["w"] * col, grid["h"] * ROW_UNIT
        bottom = max(bottom, int(y + h))
        style = f"left:{x + 4:.0f}px;top:{y + 4:.0f}px;width:{w - 8:.0f}px;height:{h - 8:.0f}px"
        if panel["type"] == "row":
            blocks.append(f'<div class="row" style="{style}">{html.escape(panel["title"])}</div>')
            continue
        series = _fetch(prom, panel, start, end)
        inner = _panel_html(panel, series, int(w - 8), int(h - 8))
        blocks.append(f'<div class="panel" style="{style}">{inner}</div>')
    head = (
        f"AutomateOS <small>live data from make metrics-test's traffic ({int(end - start)} s), "
        "drawn from the dashboard's own queries</small>"
    )
    page = (
        f'<!doctype html><html><head><meta charset="utf-8"><style>{CSS}'
        f".grid {{ position:relative; width:{WIDTH}px; height:{bottom + 8}px; }}</style></head>"
        f'<body><div class="head">{head}</div>'
        f'<div class="grid">{"".join(blocks)}</div></body></html>'
    )
    return page, bottom + 70


def screenshot(page: str, height: int, output: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium: apt-get install -y --no-install-recommends chromium")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "dashboard.html"
        source.write_text(page)
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--hide-scrollbars",
                f"--user-data-dir={folder}/profile",
                f"--window-size={WIDTH},{height}",
                f"--screenshot={output.resolve()}",
                source.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.observability.render_dashboard")
    parser.add_argument("output", type=Path)
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="automateos-render-") as folder:
        base = Path(folder)
        with running_infra() as infra:
            env = stack_env(infra.database_url, infra.redis_url, base / "data")
            env["AUTOMATEOS_MAX_BODY_BYTES"] = str(traffic.MAX_BODY_BYTES)
            with running_stack(env, base, COMPONENTS) as stack, traffic.echo_server() as echo:
                targets = {n: f"127.0.0.1:{s.port}" for n, s in stack.services.items()}
                with running_prometheus(args.prometheus, base / "prom", targets, [ALERTS]) as prom:
                    prom.wait_for_scrape_after(time.time(), list(targets), deadline_s=30)
                    start = time.time()
                    # Two rounds with a pause, so the graphs show traffic coming and going.
                    traffic.send_traffic(stack, echo)
                    time.sleep(8)
                    sent = traffic.send_traffic(stack, echo)
                    prom.wait_for_scrape_after(sent.finished_at + 5, list(targets), deadline_s=30)
                    page, height = render_html(prom, start - 5, time.time())
    screenshot(page, height, args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
