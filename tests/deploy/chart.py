"""Rendering the Helm chart for tests: find a helm binary, render value sets, index the objects.

helm comes from `make chart-tools` (.tools/helm3, .tools/helm4) or $HELM / $HELM4; without one the
chart tests skip, so `make test` runs cleanly before the tools are fetched.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "automateos"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
RELEASE = "ci"
FULLNAME = f"{RELEASE}-automateos"
NAMESPACE = "automateos"
APP_COMPONENTS = ("auth", "workflows", "ingest", "worker")
HTTP_COMPONENTS = ("auth", "workflows", "ingest")


def helm_binary(major: int = 3) -> str | None:
    """Path of a runnable helm of that major version, or None."""
    candidates = [os.environ.get("HELM" if major == 3 else f"HELM{major}")]
    candidates.append(str(ROOT / ".tools" / f"helm{major}" / "helm"))
    if major == 3:
        candidates.append(shutil.which("helm"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def helm_env() -> dict[str, str]:
    """helm keeps config/cache/data out of $HOME (read-only or shared on CI machines)."""
    home = Path(tempfile.gettempdir()) / "automateos-helm-home"
    return {
        **os.environ,
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
    }


class RenderError(Exception):
    """helm refused the values (schema or a `fail` in a template)."""


@dataclass(frozen=True)
class Manifest:
    """The objects of one render, with lookups by kind and name."""

    objects: tuple[dict[str, Any], ...]

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered")

    def find(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, name)
        except KeyError:
            return None

    def component(self, kind: str, component: str) -> dict[str, Any]:
        return self.get(kind, name_of(component))

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Deployments by their app.kubernetes.io/component label."""
        return {
            d["metadata"]["labels"]["app.kubernetes.io/component"]: d
            for d in self.of_kind("Deployment")
        }

    def secret_data(self, name: str) -> dict[str, str] | None:
        secret = self.find("Secret", name)
        if secret is None:
            return None
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def container_env(self, component: str) -> dict[str, str | None]:
        """The environment of a component's container as the kubelet would build it.

        ConfigMap and Secret references are resolved against the rendered objects; a reference
        to a Secret the chart does not render (an existingSecret) resolves to None.
        """
        pod = self.component("Deployment", component)["spec"]["template"]["spec"]
        return resolve_env(self, pod["containers"][0])


def name_of(component: str) -> str:
    return f"{FULLNAME}-{component}"


def resolve_env(manifest: Manifest, container: dict[str, Any]) -> dict[str, str | None]:
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        ref = source["configMapRef"]["name"]
        env.update(manifest.get("ConfigMap", ref)["data"])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        ref = item["valueFrom"]
        if "secretKeyRef" in ref:
            data = manifest.secret_data(ref["secretKeyRef"]["name"])
            env[item["name"]] = None if data is None else data[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            cm = manifest.get("ConfigMap", ref["configMapKeyRef"]["name"])
            env[item["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
    return env


def _render(helm: str, values_files: tuple[str, ...], extra_json: str) -> str:
    args = [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for path in values_files:
        args += ["-f", path]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as extra:
        if extra_json:
            extra.write(extra_json)  # JSON is YAML
            extra.flush()
            args += ["-f", extra.name]
        done = subprocess.run(args, capture_output=True, text=True, env=helm_env(), timeout=120)
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return done.stdout


@functools.lru_cache(maxsize=64)
def _render_cached(helm: str, values_files: tuple[str, ...], extra_json: str) -> Manifest:
    import yaml  # PyYAML comes with kubernetes-validate (`make chart-tools`)

    text = _render(helm, values_files, extra_json)
    objects = tuple(doc for doc in yaml.safe_load_all(text) if doc)
    return Manifest(objects)


def render(helm: str, *values_files: Path | str, values: dict[str, Any] | None = None) -> Manifest:
    """Render the chart with these value files (then `values` on top), cached per input."""
    return _render_cached(
        helm,
        tuple(str(p) for p in values_files),
        json.dumps(values, sort_keys=True) if values else "",
    )


def render_text(helm: str, *values_files: Path | str, values: dict[str, Any] | None = None) -> str:
    return _render(helm, tuple(str(p) for p in values_files), json.dumps(values) if values else "")


def pod_specs(manifest: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every pod spec the chart renders: workloads, Jobs and bare Pods (helm test)."""
    for obj in manifest.objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{obj['kind']}/{obj['metadata']['name']}", obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield f"Pod/{obj['metadata']['name']}", obj["spec"]


def missing_services() -> list[str]:
    """Components whose `python -m services.<name>` entry point does not exist (yet)."""
    return [c for c in APP_COMPONENTS if not (ROOT / "services" / c / "__main__.py").exists()]
