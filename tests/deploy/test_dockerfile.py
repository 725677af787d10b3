"""The Dockerfile's promises, checked statically (`make image-test` builds and runs it)."""

from __future__ import annotations

import re

from tests.deploy.chart import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]
STAGES: list[list[str]] = []
for instruction in INSTRUCTIONS:
    if instruction.upper().startswith("FROM "):
        STAGES.append([])
    if STAGES:
        STAGES[-1].append(instruction)
FINAL = STAGES[-1]


def test_base_image_is_a_build_argument_used_by_every_stage() -> None:
    first_from = next(i for i, line in enumerate(INSTRUCTIONS) if line.upper().startswith("FROM "))
    assert any(line.startswith("ARG BASE_IMAGE") for line in INSTRUCTIONS[:first_from])
    assert all(stage[0].startswith("FROM ${BASE_IMAGE}") for stage in STAGES)


def test_multi_stage_with_a_runtime_target() -> None:
    assert len(STAGES) >= 2
    assert FINAL[0].endswith("AS runtime")


def test_runs_as_a_numeric_non_root_user() -> None:
    (user,) = [line for line in FINAL if line.startswith("USER ")]
    uid = user.split()[1].split(":")[0]
    args = dict(
        line.split()[1].split("=", 1) for line in FINAL if line.startswith("ARG ") and "=" in line
    )
    uid = args.get(uid.strip("${}"), uid)
    assert uid.isdigit()
    assert int(uid) != 0


def test_no_healthcheck_kubernetes_probes_instead() -> None:
    assert not any(line.upper().startswith("HEALTHCHECK") for line in INSTRUCTIONS)


def test_final_stage_installs_no_packages_or_compilers() -> None:
    runs = " ".join(line for line in FINAL if line.startswith("RUN "))
    for word in ("apt-get", "gcc", "build-essential", "pip install"):
        assert word not in runs


def test_installs_the_project_with_every_service_extra() -> None:
    assert "'.[auth,workflows,ingest,worker]'" in DOCKERFILE


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # allow-list: only what the image needs
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "shared", "services", "nodes"}
