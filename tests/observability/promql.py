"""What the observability tests read: the metric catalogue, the dashboard's queries, the alerts.

The catalogue is parsed from docs/ARCHITECTURE.md (the contract every service exports against),
so a dashboard or alert that names a metric outside it fails here, before any Prometheus runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
CHART = ROOT / "deploy" / "helm" / "automateos"
DASHBOARD = CHART / "dashboards" / "automateos.json"
ALERTS = CHART / "dashboards" / "alerts.yaml"

COMPONENTS = ("auth", "workflows", "ingest", "worker")
HTTP_COMPONENTS = ("auth", "workflows", "ingest")

# Standard process metrics (prometheus-client's process collector) and Prometheus's own `up`.
EXTRA_METRICS = {
    "process_resident_memory_bytes": "gauge",
    "process_cpu_seconds_total": "counter",
    "up": "gauge",
}
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left"}
_KEYWORDS |= {"group_right", "offset", "bool", "inf", "nan", "atan2"}


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter, gauge, histogram
    labels: tuple[str, ...]
    # Label -> the values the catalogue enumerates for it ("outcome: accepted, duplicate, ...").
    values: dict[str, frozenset[str]]
    # The components that export it, from the catalogue's "where" column.
    exporters: tuple[str, ...]


def _parse_labels(cell: str) -> tuple[tuple[str, ...], dict[str, frozenset[str]]]:
    """`queue, state: queued, started` -> (queue, state), {state: {queued, started}}."""
    cell = re.sub(r"\([^)]*\)", "", cell).strip()
    if cell in ("", "-", "\u2013"):
        return (), {}
    names_part, _, values_part = cell.partition(":")
    names = tuple(name.strip() for name in names_part.split(",") if name.strip())
    values = {}
    if values_part:
        values[names[-1]] = frozenset(v.strip() for v in values_part.split(",") if v.strip())
    return names, values


def _exporters(where: str) -> tuple[str, ...]:
    """`shared/service.py` -> every HTTP service; otherwise the component named first."""
    if "shared/service.py" in where:
        return HTTP_COMPONENTS
    return tuple(c for c in COMPONENTS if where.strip().startswith(c))


def catalogue() -> dict[str, Metric]:
    """The metric table of docs/ARCHITECTURE.md, by metric name."""
    metrics: dict[str, Metric] = {}
    row = re.compile(r"^\|\s*`(automateos_[a-z0-9_]+)`\s*\|\s*(\w+)\s*\|([^|]*)\|([^|]*)\|")
    for line in ARCHITECTURE.read_text().splitlines():
        match = row.match(line)
        if match:
            name, kind, cell, where = match.groups()
            labels, values = _parse_labels(cell)
            metrics[name] = Metric(name, kind, labels, values, _exporters(where))
    if not metrics:
        raise AssertionError(f"no metric table found in {ARCHITECTURE}")
    return metrics


def series_names() -> set[str]:
    """Every sample name a query may use: catalogue metrics (with histogram suffixes) + extras."""
    names = set(EXTRA_METRICS)
    for metric in catalogue().values():
        names.add(metric.name)
        if metric.kind == "histogram":
            names.update(metric.name + suffix for suffix in _HISTOGRAM_SUFFIXES)
    return names


def base_metric(series_name: str) -> str:
    """The catalogue name a sample name belongs to (strips histogram suffixes)."""
    known = catalogue()
    for suffix in _HISTOGRAM_SUFFIXES:
        stem = series_name.removesuffix(suffix)
        if stem != series_name and stem in known and known[stem].kind == "histogram":
            return stem
    return series_name


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a tokenizer, good enough for our queries).

    Strings, label matchers, range/subquery brackets and grouping clauses are removed first;
    what is left is functions (followed by "("), keywords, numbers and metric names.
    """
    text = re.sub(r"#[^\n]*", "", expr)
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    text = re.sub(r"\{[^{}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        token = match.group()
        if text[match.end() :].lstrip().startswith("(") or token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def selectors(expr: str) -> list[str]:
    """Each `metric{matchers}` or bare metric selector of an expression, as written."""
    text = re.sub(r"#[^\n]*", "", expr)
    found = []
    for name in sorted(metric_names(expr)):
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])(\{{[^{{}}]*\}})?", text):
            found.append(match.group())
    return found


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str

    @property
    def label(self) -> str:
        return f"{self.panel} [{self.ref_id}]"


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-row panel, including those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            found.extend(panel.get("panels", []))
        else:
            found.append(panel)
    return found


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(panel["title"], target["refId"], target["expr"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def load_alerts() -> list[dict[str, Any]]:
    """Every alerting rule of dashboards/alerts.yaml."""
    source = yaml.safe_load(ALERTS.read_text())
    return [rule for group in source["groups"] for rule in group["rules"] if "alert" in rule]


def substitute(expr: str, variables: dict[str, str], window: str) -> str:
    """What Grafana sends for a panel query: template variables and interval macros filled in."""
    for macro in ("$__rate_interval", "$__interval", "$__range"):
        expr = expr.replace(macro, window)
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    if "$" in expr:
        raise AssertionError(f"unresolved template variable in {expr!r}")
    return expr
