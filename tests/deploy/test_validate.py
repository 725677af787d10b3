"""The chart lints strictly and renders valid objects for the oldest and newest Kubernetes
we support.

kubernetes-validate knows the built-in kinds only; the custom resources (KEDA, Prometheus Operator)
get structural checks of the fields we set in test_manifests.py.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.chart import CHART, CI_VALUES, helm_env, render

KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
CUSTOM_KINDS = {
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.stem)
@pytest.mark.parametrize("major", [3, 4])
def test_lint_strict(request: pytest.FixtureRequest, major: int, values) -> None:
    helm = request.getfixturevalue("helm" if major == 3 else "helm4")
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART), "-f", str(values)],
        capture_output=True,
        text=True,
        env=helm_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("major", [3, 4])
def test_rendered_objects_pass_strict_validation(
    request: pytest.FixtureRequest, major: int, version: str, ci_values
) -> None:
    kv = pytest.importorskip("kubernetes_validate")
    helm = request.getfixturevalue("helm" if major == 3 else "helm4")
    manifest = render(helm, ci_values)
    failures = []
    for obj in manifest.objects:
        if (obj["apiVersion"], obj["kind"]) in CUSTOM_KINDS:
            continue
        try:
            kv.validate(obj, version, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert not failures, "\n".join(failures)


def test_optional_crds_annotation_names_every_custom_kind_the_chart_renders(helm: str) -> None:
    # Chart.yaml's automateos.io/optional-crds tells operators which CRDs the toggles need:
    # "group/version Kind,Kind; group/version Kind".
    yaml = pytest.importorskip("yaml")
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    listed = set()
    for entry in chart["annotations"]["automateos.io/optional-crds"].split(";"):
        api_version, kinds = entry.split()
        listed |= {(api_version, kind) for kind in kinds.split(",")}
    rendered = {
        (obj["apiVersion"], obj["kind"])
        for values in CI_VALUES
        for obj in render(helm, values).objects
    }
    # Built-in groups are core ("v1"), dotless (apps, batch, policy) or end in .k8s.io.
    custom = {
        (version, kind)
        for version, kind in rendered
        if "." in (group := version.rpartition("/")[0]) and not group.endswith(".k8s.io")
    }
    assert custom == listed == CUSTOM_KINDS


def test_helm3_and_helm4_render_the_same(helm: str, helm4: str) -> None:
    # The value set with every secret given explicitly renders deterministically.
    values = CHART / "ci" / "ingress-tls-values.yaml"
    assert render(helm, values).objects == render(helm4, values).objects


def test_install_dry_run_renders_notes(helm4: str, ci_values) -> None:
    # Helm 4's client-side dry run needs no cluster (Helm 3's still asks for the server version;
    # its lint renders NOTES.txt too, so a template error there fails test_lint_strict).
    args = [helm4, "install", "ci", str(CHART), "--dry-run=client", "-n", "automateos"]
    done = subprocess.run(
        [*args, "-f", str(ci_values)],
        capture_output=True,
        text=True,
        env={**helm_env(), "KUBECONFIG": "/nonexistent"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("\nNOTES:\n", 1)[1]
    assert "helm test ci -n automateos" in notes
