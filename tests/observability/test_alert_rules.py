"""The alert rules file: well-formed for Prometheus, made of catalogue metrics, and each alert
fires on its condition (`promtool test rules` over synthetic series)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.observability.promql import ALERTS, ROOT, load_alerts, metric_names, series_names

RULES = load_alerts()
PROMTOOL = shutil.which("promtool") or ""
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool missing: apt-get install prometheus (make metrics-test does)"
)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["alert"])
class TestEachAlert:
    def test_names_only_catalogue_metrics(self, rule):
        unknown = metric_names(rule["expr"]) - series_names()
        assert not unknown

    def test_marks_exactly_one_threshold(self, rule):
        # The chart replaces that number with monitoring.prometheusRule.alerts.<name>.threshold.
        assert len(re.findall(r"-?[0-9][0-9.eE+-]* # threshold", rule["expr"])) == 1

    def test_has_severity_summary_and_runbook(self, rule):
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == rule["alert"].lower()
        headings = (ROOT / "docs" / "observability.md").read_text()
        assert f"### {rule['alert']}" in headings, "the runbook link needs its section"

    def test_waits_before_firing(self, rule):
        assert re.fullmatch(r"[0-9]+[smh]", rule["for"])


@needs_promtool
def test_promtool_accepts_the_rules_file():
    subprocess.run([PROMTOOL, "check", "rules", str(ALERTS)], check=True, capture_output=True)


@needs_promtool
def test_each_alert_fires_on_its_condition_only(tmp_path):
    # promtool compares annotations too; ours are long templated prose, so the scenarios check
    # labels against a copy of the rules without annotations (same expressions, same source).
    source = yaml.safe_load(ALERTS.read_text())
    for group in source["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(source))
    scenarios = yaml.safe_load(
        (ROOT / "tests" / "observability" / "alert_scenarios.yaml").read_text()
    )
    scenarios["rule_files"] = ["rules.yaml"]
    tested = {t["alertname"] for case in scenarios["tests"] for t in case["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in RULES}, "every alert needs a scenario"
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(scenarios))

    done = subprocess.run(
        [PROMTOOL, "test", "rules", "test.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
