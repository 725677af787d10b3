"""`make image-test`: build the image from the real Dockerfile with podman, check what it must
(and must not) contain, and run the chart's rendered workloads from it against local PostgreSQL
and Redis until a webhook's run succeeds.

Skipped unless AUTOMATEOS_IMAGE_TEST=1 (set by `make image-test`, which also installs podman and
builds the debootstrap base image): a build takes a minute and needs root.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.workflows.console.endpoints import STATIC
from tests.deploy.chart import CHART, ROOT, missing_services, render
from tests.deploy.chart_run import Launch, Starter, build_plan, push_webhook, running_plan

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("AUTOMATEOS_IMAGE_TEST") != "1", reason="run with `make image-test`"
    ),
]

IMAGE = os.environ.get("AUTOMATEOS_IMAGE", "localhost/automateos:image-test")
BASE_IMAGE = os.environ.get("AUTOMATEOS_BASE_IMAGE", "localhost/automateos-base:bookworm")
# The host's trust store, for machines behind a TLS-intercepting proxy (a build secret: it never
# lands in a layer).
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="module")
def podman() -> str:
    found = shutil.which("podman")
    if found is None:
        pytest.skip("no podman: run `make image-test`")
    return found


@pytest.fixture(scope="module")
def image(podman: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    args = [podman, "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "--target", "runtime"]
    if HOST_CA.is_file():
        args += ["--secret", f"id=ca,src={HOST_CA}"]
    args += ["-t", IMAGE, str(ROOT)]
    log = tmp_path_factory.mktemp("build") / "build.log"
    with open(log, "wb") as out:
        done = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, timeout=900)
    assert done.returncode == 0, log.read_text(errors="replace")[-6000:]
    return IMAGE


def _podman(podman: str, *args: str) -> str:
    done = subprocess.run([podman, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


class TestImage:
    def test_runs_as_uid_10001_without_healthcheck(self, podman: str, image: str) -> None:
        (info,) = json.loads(_podman(podman, "image", "inspect", image))
        assert info["Config"]["User"] == "10001:10001"
        assert not info["Config"].get("Healthcheck")

    def test_has_no_compilers_and_no_pip(self, podman: str, image: str) -> None:
        found = _podman(
            podman,
            "run",
            "--rm",
            image,
            "sh",
            "-c",
            "for t in gcc cc c++ g++ make pip pip3; do command -v $t; done; true",
        )
        assert found.strip() == ""

    def test_every_command_of_the_chart_exists_in_the_image(self, podman: str, image: str) -> None:
        modules = "services.auth services.workflows services.ingest services.worker shared.db"
        code = (
            "import importlib.util, sys; "
            f"missing = [m for m in {modules.split()!r} if importlib.util.find_spec(m) is None]; "
            "print(missing); sys.exit(bool(missing))"
        )
        _podman(podman, "run", "--rm", "--read-only", image, "python", "-c", code)

    def test_the_console_files_ship_in_the_image(self, podman: str, image: str) -> None:
        code = (
            "import pathlib, services.workflows.console as c; "
            "root = pathlib.Path(c.__file__).parent / 'static'; "
            "print(*sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file()))"
        )
        shipped = _podman(podman, "run", "--rm", "--read-only", image, "python", "-c", code)
        expected = sorted(str(p.relative_to(STATIC)) for p in STATIC.rglob("*") if p.is_file())
        assert shipped.split() == expected


@pytest.fixture
def podman_starter(podman: str, image: str, tmp_path: Path) -> Iterator[Starter]:
    """Start a launch as a container: host network, read-only root, tmpfs /tmp, no capabilities;
    secret volumes bind-mounted read-only at their mountPath. Stopping the podman client (by its
    pid) forwards SIGTERM to the container, as the kubelet would."""
    names: list[str] = []

    def start(launch: Launch, log: Path) -> subprocess.Popen[bytes]:
        name = f"automateos-test-{launch.name}-{secrets.token_hex(3)}"
        names.append(name)
        env_file = tmp_path / f"{name}.env"
        env_file.write_text("".join(f"{k}={v}\n" for k, v in launch.env.items()))
        env_file.chmod(0o600)
        args = [podman, "run", "--rm", "--name", name, "--network", "host", "--read-only"]
        args += ["--tmpfs", "/tmp:rw,mode=1777,size=256m", "--cap-drop", "ALL"]
        args += ["--security-opt", "no-new-privileges", "--env-file", str(env_file)]
        for mount, files in launch.files.items():
            folder = tmp_path / f"{name}-{Path(mount).name}"
            folder.mkdir(mode=0o755)
            for file, text in files.items():
                (folder / file).write_text(text)
                (folder / file).chmod(0o644)  # the image's uid must read it
            args += ["-v", f"{folder}:{mount}:ro"]
        with open(log, "ab") as out:
            return subprocess.Popen(
                [*args, image, *launch.argv], stdout=out, stderr=subprocess.STDOUT
            )

    yield start
    for name in names:
        subprocess.run([podman, "rm", "-f", "-t", "5", name], capture_output=True, timeout=60)


def test_chart_workloads_run_from_the_image(helm, databases, podman_starter, tmp_path) -> None:
    if missing := missing_services():
        pytest.skip(f"services not written yet: {missing}")
    values = {"ingress": {"enabled": True, "hosts": ["automate.example.com"]}}
    manifest = render(helm, CHART / "ci" / "default-values.yaml", values=values)
    plan = build_plan(manifest, *databases)
    with running_plan(plan, podman_starter, tmp_path, deadline_s=120) as running:
        for service in running.values():
            path, port = service.launch.readiness
            assert httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5).status_code == 200
        run = push_webhook(plan)
    assert run["status"] == "succeeded"
