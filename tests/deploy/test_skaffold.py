"""skaffold.yaml builds what the Dockerfile defines and sets values the chart really has."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import CHART, FULLNAME, ROOT, render

yaml = pytest.importorskip("yaml", reason="PyYAML not installed: run `make chart-test`")

SKAFFOLD = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
RELEASES = SKAFFOLD["deploy"]["helm"]["releases"]


def _dockerfile_stages(path: Path) -> set[str]:
    text = path.read_text()
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)\s*$", text, flags=re.MULTILINE | re.I))


def _has_value(values: dict[str, Any], dotted: str) -> bool:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


@pytest.mark.parametrize("artifact", SKAFFOLD["build"]["artifacts"], ids=lambda a: a["image"])
def test_artifacts_build_a_stage_of_an_existing_dockerfile(artifact) -> None:
    dockerfile = ROOT / artifact.get("context", ".") / artifact["docker"]["dockerfile"]
    assert dockerfile.is_file()
    assert artifact["docker"]["target"] in _dockerfile_stages(dockerfile)


def test_every_artifact_is_deployed_through_image_values() -> None:
    templates = " ".join(str(v) for r in RELEASES for v in r["setValueTemplates"].values())
    for artifact in SKAFFOLD["build"]["artifacts"]:
        assert f"IMAGE_REPO_{artifact['image']}" in templates
        assert f"IMAGE_TAG_{artifact['image']}" in templates


@pytest.mark.parametrize("release", RELEASES, ids=lambda r: r["name"])
def test_values_it_sets_exist_in_values_yaml(release) -> None:
    chart = ROOT / release["chartPath"]
    values = yaml.safe_load((chart / "values.yaml").read_text())
    for key in [*release.get("setValueTemplates", {}), *release.get("setValues", {})]:
        assert _has_value(values, key), key
    for path in release.get("valuesFiles", []):
        assert (ROOT / path).is_file(), path


def _nested(dotted: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dotted.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def test_port_forwards_name_rendered_services(helm: str) -> None:
    (release,) = RELEASES
    files = [ROOT / p for p in release["valuesFiles"]]
    manifest = render(helm, *files, values=_nested(release["setValues"]))
    # Rendered as release "ci" (fullname ci-automateos); skaffold's release "automateos" gives
    # fullname "automateos" (the chart name is not repeated).
    ports = {
        s["metadata"]["name"].replace(FULLNAME, "automateos", 1): s["spec"]["ports"][0]["port"]
        for s in manifest.of_kind("Service")
    }
    assert release["name"] == "automateos"
    for forward in SKAFFOLD["portForward"]:
        assert ports[forward["resourceName"]] == forward["port"]


def test_chart_path_is_this_chart() -> None:
    assert {ROOT / r["chartPath"] for r in RELEASES} == {CHART}
