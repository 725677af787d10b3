"""The Grafana dashboard, read without Grafana: queries name catalogue metrics, cover all of them,
and use the `$datasource` variable, so the dashboard works on any Prometheus it is pointed at."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.observability.promql import (
    ROOT,
    base_metric,
    catalogue,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    series_names,
)

DASHBOARD = load_dashboard()
QUERIES = panel_queries(DASHBOARD)


def variables() -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in DASHBOARD["templating"]["list"]}


class TestQueries:
    @pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.label)
    def test_names_only_catalogue_metrics(self, query):
        unknown = metric_names(query.expr) - series_names()
        assert not unknown, f"{query.label}: not in docs/ARCHITECTURE.md's catalogue: {unknown}"

    @pytest.mark.parametrize("query", QUERIES, ids=lambda q: q.label)
    def test_is_scoped_to_the_job_variable(self, query):
        # Without it a shared Prometheus would mix in other releases' (or apps') series.
        assert 'job=~"$job"' in query.expr, query.label

    def test_every_catalogue_metric_has_a_panel(self):
        used = {base_metric(name) for q in QUERIES for name in metric_names(q.expr)}
        missing = set(catalogue()) - used
        assert not missing


class TestPanels:
    @pytest.mark.parametrize("panel", panels(DASHBOARD), ids=lambda p: p["title"])
    def test_uses_the_datasource_variable(self, panel):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]

    @pytest.mark.parametrize("panel", panels(DASHBOARD), ids=lambda p: p["title"])
    def test_says_what_it_shows(self, panel):
        assert panel["description"]
        assert panel["fieldConfig"]["defaults"]["unit"]

    def test_ids_are_unique(self):
        ids = [p["id"] for p in DASHBOARD["panels"]]
        assert len(ids) == len(set(ids))

    def test_panels_do_not_overlap(self):
        def cells(panel: dict[str, Any]) -> set[tuple[int, int]]:
            g = panel["gridPos"]
            return {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }

        for a, b in itertools.combinations(DASHBOARD["panels"], 2):
            assert not cells(a) & cells(b), (a["title"], b["title"])
            assert a["gridPos"]["x"] + a["gridPos"]["w"] <= 24


class TestVariables:
    def test_datasource_is_a_prometheus_picker(self):
        datasource = variables()["datasource"]
        assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")

    def test_job_lists_the_jobs_exporting_automateos_metrics(self):
        job = variables()["job"]
        assert job["query"]["query"] == 'label_values({__name__=~"automateos_.+"}, job)'
        assert job["includeAll"]
        assert job["allValue"] == ".+"

    def test_uid_is_stable(self):
        # Links and the sidecar's updates key on the uid: never change it.
        assert DASHBOARD["uid"] == "automateos-overview"


class TestDocs:
    def test_every_catalogue_metric_is_explained(self):
        text = (ROOT / "docs" / "observability.md").read_text()
        missing = [name for name in catalogue() if f"`{name}`" not in text]
        assert not missing
