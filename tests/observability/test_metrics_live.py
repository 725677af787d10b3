"""`make metrics-test`: a real Prometheus scrapes a real stack that served real traffic.

Proves through Prometheus's HTTP API that every dashboard panel query and every alert expression
parses and evaluates, that every panel shows data, that each catalogue metric is exported by the
component the catalogue names with exactly its labels, that the counters agree with the traffic
sent, and that no label can grow without bound or carries an id, token or secret.

A pytest module rather than a script: it reuses the session's PostgreSQL/Redis fixture and the
stack launcher, and each panel, alert and metric is its own test, so a failure names exactly
the panel or metric at fault instead of stopping at the first.
"""

from __future__ import annotations

import re
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest

from tests.fixtures.stack import Stack, running_stack, stack_env
from tests.observability import traffic
from tests.observability.conftest import unavailable
from tests.observability.prometheus import (
    Prometheus,
    QueryError,
    finite_samples,
    operator_target_labels,
    running_prometheus,
)
from tests.observability.promql import (
    ALERTS,
    COMPONENTS,
    EXTRA_METRICS,
    HTTP_COMPONENTS,
    ROOT,
    Metric,
    PanelQuery,
    catalogue,
    load_alerts,
    load_dashboard,
    metric_names,
    panel_queries,
    selectors,
    substitute,
)

pytestmark = pytest.mark.metrics

QUERIES = panel_queries(load_dashboard())
ALERT_RULES = load_alerts()
CATALOGUE = catalogue()
# Labels the scrape adds: Prometheus's own, and the Prometheus Operator's (operator_target_labels).
# `service` is one of them for auth, workflows and ingest, and also a label of their own request
# metrics: there theirs must win (the monitors' honorLabels).
TARGET_LABELS = {"job", "instance", "namespace", "pod", "container", "endpoint", "service"}
# Generous for every bounded label we have (status codes, routes, node types, buckets), tiny
# next to what one id or token per request would produce (hundreds here).
MAX_LABEL_VALUES = 40
MAX_SERIES_PER_JOB = 2000
UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I)
LONG_HEX = re.compile(r"[0-9a-f]{16,}", re.I)


@dataclass
class Observed:
    prometheus: Prometheus
    stack: Stack
    sent: traffic.Sent

    @property
    def window(self) -> str:
        """A range covering everything since Prometheus started: all of the traffic."""
        return f"{int(time.time() - self.prometheus.started_at) + 10}s"

    def grafana_expr(self, expr: str) -> str:
        # `.+` is what Grafana sends for the dashboard's "All" job (allValue).
        return substitute(expr, {"job": ".+"}, self.window)

    def empty_selectors(self, expr: str) -> list[str]:
        """The selectors of `expr` that match no series at all: the metric nobody exports."""
        return [s for s in selectors(expr) if not self.prometheus.series(s)]


@pytest.fixture(scope="module")
def observed(
    request: pytest.FixtureRequest, prometheus_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    missing = [c for c in COMPONENTS if not (ROOT / "services" / c / "__main__.py").exists()]
    if missing:
        unavailable(f"services not written yet: {missing}")
    infra = request.getfixturevalue("infra")
    base = tmp_path_factory.mktemp("metrics")
    env = stack_env(infra.database_url, infra.redis_url, base / "data")
    env["AUTOMATEOS_MAX_BODY_BYTES"] = str(traffic.MAX_BODY_BYTES)
    with running_stack(env, base, COMPONENTS) as stack, traffic.echo_server() as echo_url:
        targets = {name: f"127.0.0.1:{service.port}" for name, service in stack.services.items()}
        # Scraped as the chart's ServiceMonitors/PodMonitor would have it: the operator's target
        # labels, honorLabels on.
        labels = {name: operator_target_labels(name) for name in targets}
        with running_prometheus(
            prometheus_binary, base / "prometheus", targets, [ALERTS], labels, honor_labels=True
        ) as prom:
            # A sample before the traffic, so rate() and increase() see all of it.
            prom.wait_for_scrape_after(time.time(), list(targets), deadline_s=30)
            sent = traffic.send_traffic(stack, echo_url)
            prom.wait_for_scrape_after(sent.finished_at + 0.5, list(targets), deadline_s=30)
            # Two rule evaluations (every 1 s) on the final data.
            time.sleep(2.5)
            yield Observed(prom, stack, sent)


class TestScrape:
    def test_every_component_is_scraped(self, observed):
        targets = observed.prometheus.api("targets")["activeTargets"]
        health = {t["labels"]["job"]: (t["health"], t["lastError"]) for t in targets}
        assert health == {c: ("up", "") for c in COMPONENTS}

    def test_job_variable_lists_every_component(self, observed):
        # The dashboard's $job variable: label_values({__name__=~"automateos_.+"}, job).
        jobs = observed.prometheus.api(
            "label/job/values", **{"match[]": '{__name__=~"automateos_.+"}'}
        )
        assert set(jobs) == set(COMPONENTS)


class TestDashboardPanels:
    @pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.label)
    def test_query_returns_data(self, observed, query: PanelQuery):
        expr = observed.grafana_expr(query.expr)
        try:
            result = observed.prometheus.query(expr)
        except QueryError as exc:
            pytest.fail(f"{query.label}: Prometheus refused the query: {exc}\n{expr}")
        if finite_samples(result) == 0:
            empty = observed.empty_selectors(expr)
            pytest.fail(
                f"{query.label}: no data ({len(result)} series, none with a number).\n"
                f"Selectors matching no series at all: {empty or 'none'}\n{expr}"
            )


def _rules_by_name(prometheus: Prometheus) -> dict[str, dict[str, Any]]:
    groups = prometheus.api("rules", type="alert")["groups"]
    return {rule["name"]: rule for group in groups for rule in group["rules"]}


def _timestamp(text: str) -> float:
    # Prometheus writes nanoseconds; datetime parses at most microseconds.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", text.replace("Z", "+00:00"))
    return datetime.fromisoformat(trimmed).timestamp()


class TestAlertRules:
    def test_prometheus_loaded_every_alert(self, observed):
        assert set(_rules_by_name(observed.prometheus)) == {r["alert"] for r in ALERT_RULES}

    @pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
    def test_evaluates_without_error(self, observed, rule):
        loaded = _rules_by_name(observed.prometheus)[rule["alert"]]
        assert loaded["health"] == "ok", loaded.get("lastError")
        assert _timestamp(loaded["lastEvaluation"]) > observed.sent.finished_at
        observed.prometheus.query(rule["expr"])  # and directly: QueryError if it does not parse

    @pytest.mark.parametrize("rule", ALERT_RULES, ids=lambda r: r["alert"])
    def test_watches_metrics_that_exist(self, observed, rule):
        # An alert on a metric nobody exports can never fire: that is a silent failure.
        absent = [
            m for m in sorted(metric_names(rule["expr"])) if not observed.prometheus.series(m)
        ]
        assert not absent, f"{rule['alert']} watches metrics no component exports: {absent}"


class TestCatalogue:
    @pytest.mark.parametrize("metric", CATALOGUE.values(), ids=lambda m: m.name)
    def test_exported_by_its_components_with_its_labels(self, observed, metric: Metric):
        sample = metric.name + ("_count" if metric.kind == "histogram" else "")
        series = observed.prometheus.series(sample)
        jobs = {s["job"] for s in series}
        missing = set(metric.exporters) - jobs
        assert not missing, (
            f"{metric.name}: not exported by {sorted(missing)} (catalogue says it is)"
        )
        for labels in series:
            names = set(labels) - {"__name__"} - (TARGET_LABELS - set(metric.labels))
            assert names == set(metric.labels), f"{metric.name}: labels {sorted(names)}"
            for label, allowed in metric.values.items():
                assert labels[label] in allowed, f"{metric.name}{{{label}={labels[label]!r}}}"

    @pytest.mark.parametrize("job", HTTP_COMPONENTS)
    def test_request_metrics_keep_the_services_own_service_label(self, observed, job):
        # Scraped like the ServiceMonitor does, whose `service` target label is the Kubernetes
        # Service's name: without honorLabels the dashboard's service="ingest" would match nothing.
        series = observed.prometheus.series(f'automateos_http_requests_total{{job="{job}"}}')
        assert series
        assert {labels["service"] for labels in series} == {job}
        assert not [labels for labels in series if "exported_service" in labels]

    @pytest.mark.parametrize("job", COMPONENTS)
    @pytest.mark.parametrize("name", ["process_resident_memory_bytes", "process_cpu_seconds_total"])
    def test_every_component_reports_process_memory_and_cpu(self, observed, name, job):
        assert observed.prometheus.series(f'{name}{{job="{job}"}}'), f"{job} does not export {name}"

    def test_automateos_metrics_outside_the_catalogue(self, observed):
        # Not a failure (more metrics do no harm to the dashboard), but the catalogue is the
        # contract: an undocumented metric is reported so it gets documented or removed.
        names = set(observed.prometheus.api("label/__name__/values"))
        known = set(EXTRA_METRICS)
        for metric in CATALOGUE.values():
            # prometheus-client adds `<name without _total>_created` (and histogram series).
            stem = metric.name.removesuffix("_total")
            known |= {metric.name, f"{stem}_created"}
            known |= {f"{stem}{suffix}" for suffix in ("_bucket", "_count", "_sum")}
        extra = sorted(n for n in names if n.startswith("automateos_") and n not in known)
        if extra:
            warnings.warn(f"automateos metrics not in docs/ARCHITECTURE.md: {extra}", stacklevel=1)


def _value_by(observed: Observed, expr: str, label: str) -> dict[str, int]:
    return {
        sample["metric"].get(label, ""): round(float(sample["value"][1]))
        for sample in observed.prometheus.query(expr)
        if float(sample["value"][1]) > 0
    }


class TestCountersMatchTheTraffic:
    def test_webhooks_by_outcome(self, observed):
        counted = _value_by(observed, "sum by (outcome) (automateos_webhooks_total)", "outcome")
        assert counted == dict(observed.sent.outcomes)

    def test_every_webhook_in_ingest_request_metrics(self, observed):
        expr = (
            "sum(automateos_http_request_duration_seconds_count"
            '{job="ingest", route="/hooks/{token}"})'
        )
        assert _value_by(observed, expr, "") == {"": sum(observed.sent.outcomes.values())}

    def test_runs_by_status(self, observed):
        counted = _value_by(observed, "sum by (status) (automateos_runs_total)", "status")
        sent = observed.sent
        assert counted == {"succeeded": sent.runs - sent.failing_runs, "failed": sent.failing_runs}

    def test_queue_wait_once_per_run(self, observed):
        counted = _value_by(observed, "sum(automateos_queue_wait_seconds_count)", "")
        assert counted == {"": observed.sent.runs}

    def test_node_types_and_retries(self, observed):
        executed = _value_by(
            observed, "sum by (node_type) (automateos_node_executions_total)", "node_type"
        )
        assert {"transform", "filter", "http_request", "log"} <= set(executed)
        retries = _value_by(
            observed, "sum by (node_type) (automateos_node_retries_total)", "node_type"
        )
        # Each failing delivery's http_request answered 500 twice: one retry each.
        assert retries == {"http_request": observed.sent.failing_runs}


@pytest.fixture(scope="module")
def series(observed: Observed) -> list[dict[str, str]]:
    """Every series the four components export, with all their labels."""
    return observed.prometheus.series('{job=~"auth|workflows|ingest|worker"}')


class TestLabelsAreBounded:
    def test_few_values_per_label(self, series):
        values: dict[tuple[str, str], set[str]] = defaultdict(set)
        for labels in series:
            for label, value in labels.items():
                if label not in {"__name__"} | TARGET_LABELS:
                    values[(labels["__name__"], label)].add(value)
        wide = {
            f"{name}{{{label}}}": len(v)
            for (name, label), v in values.items()
            if len(v) > MAX_LABEL_VALUES
        }
        assert not wide

    def test_few_series_per_component(self, series):
        per_job: dict[str, int] = defaultdict(int)
        for labels in series:
            per_job[labels["job"]] += 1
        assert max(per_job.values()) <= MAX_SERIES_PER_JOB, dict(per_job)

    def test_no_label_value_is_an_id_a_token_or_a_secret(self, observed, series):
        sensitive = {s for s in observed.sent.sensitive if len(s) >= 8}
        leaks = set()
        for labels in series:
            for label, value in labels.items():
                if label in {"__name__"} | TARGET_LABELS:
                    continue
                if UUID.search(value) or LONG_HEX.search(value) or _looks_like_token(value):
                    leaks.add(f"{labels['__name__']}{{{label}={value!r}}}")
                if any(secret in value for secret in sensitive):
                    leaks.add(f"{labels['__name__']}{{{label}={value!r}}} (a value the test sent)")
        assert not leaks

    def test_routes_are_templates(self, series):
        routes = {labels["route"] for labels in series if "route" in labels}
        assert "/hooks/{token}" in routes
        for route in routes:
            assert route == "unmatched" or route.startswith("/"), route


def _looks_like_token(value: str) -> bool:
    """Long, mixed-case, digit-bearing base64url: what random tokens look like, not words."""
    return (
        re.fullmatch(r"[A-Za-z0-9_-]{22,}", value) is not None
        and sum(c.isdigit() for c in value) >= 2
        and any(c.isupper() for c in value)
        and any(c.islower() for c in value)
    )
