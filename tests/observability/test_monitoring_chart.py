"""The chart's monitoring objects: the dashboard ConfigMap for the Grafana sidecar and the
PrometheusRule, both rendered from the files under dashboards/ and nothing else."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.deploy.chart import FULLNAME, RenderError, helm_binary, render
from tests.observability.promql import ALERTS, DASHBOARD

BASE = {
    "database": {"url": "postgresql://u:p@db:5432/automateos"},
    "redis": {"url": "redis://r:6379/0"},
    # With external servers the network policies must say where they are.
    "networkPolicy": {
        "databaseEgress": {
            "postgresql": {"to": [{"ipBlock": {"cidr": "10.20.0.0/24"}}]},
            "redis": {"to": [{"ipBlock": {"cidr": "10.20.1.0/24"}}]},
        }
    },
}


@pytest.fixture(scope="module")
def helm() -> str:
    found = helm_binary(3)
    if found is None:
        pytest.skip("no helm 3 binary: run `make chart-tools` (fetches it into .tools/)")
    return found


def monitoring(**blocks: Any) -> dict[str, Any]:
    return {**BASE, "monitoring": blocks}


def rule_groups(helm: str, prometheus_rule: dict[str, Any]) -> list[dict[str, Any]]:
    manifest = render(helm, values=monitoring(prometheusRule={"enabled": True, **prometheus_rule}))
    groups: list[dict[str, Any]] = manifest.get("PrometheusRule", FULLNAME)["spec"]["groups"]
    return groups


def rules_by_alert(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


class TestOffByDefault:
    def test_nothing_without_the_toggles(self, helm):
        kinds = {(o["kind"], o["metadata"]["name"]) for o in render(helm, values=BASE).objects}
        assert ("PrometheusRule", FULLNAME) not in kinds
        assert ("ConfigMap", f"{FULLNAME}-dashboards") not in kinds


class TestDashboards:
    def test_configmap_carries_the_dashboard_json_unchanged(self, helm):
        manifest = render(helm, values=monitoring(dashboards={"enabled": True}))
        configmap = manifest.get("ConfigMap", f"{FULLNAME}-dashboards")
        assert json.loads(configmap["data"]["automateos.json"]) == json.loads(DASHBOARD.read_text())

    def test_labelled_for_the_grafana_sidecar_by_default(self, helm):
        manifest = render(helm, values=monitoring(dashboards={"enabled": True}))
        labels = manifest.get("ConfigMap", f"{FULLNAME}-dashboards")["metadata"]["labels"]
        assert labels["grafana_dashboard"] == "1"

    def test_own_labels_are_added_to_the_sidecar_label(self, helm):
        block = {"enabled": True, "labels": {"team": "automation"}}
        manifest = render(helm, values=monitoring(dashboards=block))
        labels = manifest.get("ConfigMap", f"{FULLNAME}-dashboards")["metadata"]["labels"]
        assert (labels["grafana_dashboard"], labels["team"]) == ("1", "automation")

    def test_sidecar_labels_annotations_and_namespace_are_configurable(self, helm):
        # values.yaml holds the default label, and Helm merges maps: a label is added to it,
        # and `null` drops it.
        block = {
            "enabled": True,
            "labels": {"dashboards": "automateos", "grafana_dashboard": None},
            "annotations": {"grafana_folder": "AutomateOS"},
            "namespace": "monitoring",
        }
        manifest = render(helm, values=monitoring(dashboards=block))
        meta = manifest.get("ConfigMap", f"{FULLNAME}-dashboards")["metadata"]
        assert meta["labels"]["dashboards"] == "automateos"
        assert "grafana_dashboard" not in meta["labels"]
        assert meta["annotations"] == {"grafana_folder": "AutomateOS"}
        assert meta["namespace"] == "monitoring"


class TestPrometheusRule:
    def test_is_the_rules_file_verbatim_without_overrides(self, helm):
        assert rule_groups(helm, {}) == yaml.safe_load(ALERTS.read_text())["groups"]

    def test_threshold_replaces_only_the_marked_number(self, helm):
        source = rules_by_alert(yaml.safe_load(ALERTS.read_text())["groups"])
        overrides = {"AutomateOSRunFailureRatioHigh": {"threshold": 0.35}}
        rule = rules_by_alert(rule_groups(helm, {"alerts": overrides}))[
            "AutomateOSRunFailureRatioHigh"
        ]
        expected = source["AutomateOSRunFailureRatioHigh"]["expr"].replace(
            "> 0.2 # threshold", "> 0.35 # threshold"
        )
        assert rule["expr"] == expected

    def test_for_severity_and_labels_per_alert_and_for_all(self, helm):
        rules = rules_by_alert(
            rule_groups(
                helm,
                {
                    "additionalLabels": {"team": "automation", "severity": "ignored"},
                    "alerts": {
                        "AutomateOSNoWorkers": {
                            "for": "5m",
                            "severity": "page",
                            "labels": {"team": "sre"},
                        }
                    },
                },
            )
        )
        assert rules["AutomateOSNoWorkers"]["for"] == "5m"
        assert rules["AutomateOSNoWorkers"]["labels"] == {"severity": "page", "team": "sre"}
        # Global labels add to every alert but never override the alert's own severity.
        assert rules["AutomateOSRunFailureRatioHigh"]["labels"] == {
            "severity": "warning",
            "team": "automation",
        }

    def test_disabled_alerts_are_left_out(self, helm):
        rules = rules_by_alert(
            rule_groups(helm, {"alerts": {"AutomateOSNoWorkers": {"enabled": False}}})
        )
        assert "AutomateOSNoWorkers" not in rules
        assert "AutomateOSWorkerHeartbeatStale" in rules

    def test_unknown_alert_name_is_refused(self, helm):
        with pytest.raises(RenderError, match="no such alert"):
            rule_groups(helm, {"alerts": {"AutomateOSTypo": {"enabled": False}}})

    def test_selector_labels_and_extra_groups(self, helm):
        extra = {"name": "mine", "rules": [{"alert": "Mine", "expr": "vector(1)"}]}
        manifest = render(
            helm,
            values=monitoring(
                prometheusRule={
                    "enabled": True,
                    "labels": {"release": "kps"},
                    "additionalGroups": [extra],
                }
            ),
        )
        rule = manifest.get("PrometheusRule", FULLNAME)
        assert rule["metadata"]["labels"]["release"] == "kps"
        assert rule["spec"]["groups"][-1] == extra


@pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool missing: apt-get install prometheus"
)
def test_rendered_rules_with_overrides_are_valid_for_prometheus(helm, tmp_path):
    overrides = {
        "AutomateOSQueueBacklogGrowing": {"threshold": 1000},
        "AutomateOSNoWorkers": {"threshold": 45.5},
        "AutomateOSRunFailureRatioHigh": {"threshold": 0.5, "for": "30m"},
    }
    groups = rule_groups(helm, {"alerts": overrides})
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    done = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "rules.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    exprs = rules_by_alert(groups)
    assert "> 1000 # threshold" in exprs["AutomateOSQueueBacklogGrowing"]["expr"]
    assert "< 45.5 # threshold" in exprs["AutomateOSNoWorkers"]["expr"]
