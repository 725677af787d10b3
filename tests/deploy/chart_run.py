"""Run the chart's rendered workloads outside Kubernetes and push a webhook through them.

The plan is built from the rendered objects only: each Deployment's command, args, envFrom and
env (ConfigMaps and Secrets resolved like the kubelet does), container ports, probes and secret
volumes; the migration Job's command and env; the Ingress routes. What is changed to run here is
only what a cluster would provide differently: the PostgreSQL/Redis URLs, the listen host,
127.0.0.1 ports for the container ports, Service DNS names (`http://<service>:<port>` becomes the
local port behind that Service's targetPort), and mounted folders. So a wrong port name, a Service
pointing at the wrong port, a missing variable or a command that does not exist fails here.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from scripts.localinfra import free_port, stop_process
from tests.deploy.chart import NAMESPACE, Manifest, resolve_env

# A workflow whose run proves the whole path: ingest -> Redis -> worker -> PostgreSQL.
HELLO_NODES = [{"id": "hello", "type": "log", "params": {"message": "hi"}}]


@dataclass
class Launch:
    """One workload as a process: argv and env as the chart renders them, adapted to 127.0.0.1."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ports: dict[str, int] = field(default_factory=dict)  # container port name -> local port
    readiness: tuple[str, int] | None = None  # (path, local port)
    liveness: tuple[str, int] | None = None
    files: dict[str, dict[str, str]] = field(default_factory=dict)  # mountPath -> {file: text}


@dataclass
class Plan:
    migrations: Launch
    services: dict[str, Launch]
    routes: list[tuple[str, int]]  # (Ingress path prefix, local port), longest first


def _secret_files(manifest: Manifest, pod: dict[str, Any], container: dict[str, Any]) -> dict:
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "secret" in volume:
            data = manifest.secret_data(volume["secret"]["secretName"])
            assert data is not None, f"secret volume {volume['secret']['secretName']} not rendered"
            files[mount["mountPath"]] = data
    return files


def _local_env(
    env: dict[str, str | None], overrides: dict[str, str], service_urls: dict[str, str]
) -> dict[str, str]:
    missing = [k for k, v in env.items() if v is None]
    assert not missing, f"values from Secrets the chart does not render: {missing}"
    out = {}
    for key, value in env.items():
        assert value is not None
        for cluster_url, local_url in service_urls.items():
            value = re.sub(re.escape(cluster_url) + r"(?=/|$)", local_url, value)
        out[key] = value
    for key, value in overrides.items():
        if key in out:
            out[key] = value
    return out


def build_plan(manifest: Manifest, database_url: str, redis_url: str) -> Plan:
    """Turn the rendered objects into local launches (see the module docstring)."""
    deployments = manifest.deployments()
    ports: dict[str, dict[str, tuple[int, int]]] = {}  # component -> name -> (container, local)
    for component, deployment in deployments.items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        ports[component] = {
            p["name"]: (p["containerPort"], free_port()) for p in container.get("ports", [])
        }

    # http://<service>[.<ns>[.svc[.cluster.local]]]:<port> -> the local port behind targetPort.
    service_urls: dict[str, str] = {}
    service_ports: dict[tuple[str, str], int] = {}
    for service in manifest.of_kind("Service"):
        component = service["metadata"]["labels"].get("app.kubernetes.io/component")
        if component not in deployments:
            continue
        name = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            _, local = ports[component][port["targetPort"]]
            service_ports[(name, port["name"])] = local
            fqdn = f"{name}.{NAMESPACE}.svc.cluster.local"
            for host in (name, f"{name}.{NAMESPACE}", f"{name}.{NAMESPACE}.svc", fqdn):
                service_urls[f"http://{host}:{port['port']}"] = f"http://127.0.0.1:{local}"

    base = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "AUTOMATEOS_HOST": "127.0.0.1"}
    launches = {}
    for component, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = resolve_env(manifest, container)
        overrides = dict(base)
        # A port variable must name one of the container's declared ports.
        for key in ("AUTOMATEOS_PORT", "AUTOMATEOS_METRICS_PORT"):
            if key in env:
                matches = [loc for cp, loc in ports[component].values() if str(cp) == env[key]]
                assert matches, f"{component}: {key}={env[key]} is not a container port"
                overrides[key] = str(matches[0])
        launch = Launch(
            name=component,
            argv=[*container["command"], *container.get("args", [])],
            env=_local_env(env, overrides, service_urls),
            ports={n: loc for n, (_, loc) in ports[component].items()},
            files=_secret_files(manifest, pod, container),
        )
        for probe, attr in (("readinessProbe", "readiness"), ("livenessProbe", "liveness")):
            get = container[probe]["httpGet"]
            setattr(launch, attr, (get["path"], launch.ports[get["port"]]))
        launches[component] = launch

    (job,) = [j for j in manifest.of_kind("Job") if "migrations" in j["metadata"]["name"]]
    container = job["spec"]["template"]["spec"]["containers"][0]
    migrations = Launch(
        name="migrations",
        argv=[*container["command"], *container.get("args", [])],
        env=_local_env(resolve_env(manifest, container), base, service_urls),
    )

    routes = []
    for ingress in manifest.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                routes.append(
                    (path["path"], service_ports[(backend["name"], backend["port"]["name"])])
                )
    routes.sort(key=lambda r: -len(r[0]))
    return Plan(migrations, launches, routes)


def route(plan: Plan, path: str) -> str:
    """The local URL the Ingress would send `path` to (Prefix matching by path element)."""
    for prefix, port in plan.routes:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            return f"http://127.0.0.1:{port}{path}"
    raise LookupError(f"no Ingress route for {path}")


# ------------------------------------------------------------------------------------------------
# Running the plan: as local processes (chart-test) or in containers (image-test).


@dataclass
class Running:
    launch: Launch
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


Starter = Callable[[Launch, Path], subprocess.Popen[bytes]]


def clean_environ() -> dict[str, str]:
    """The caller's environment minus anything that would configure AutomateOS behind our back."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AUTOMATEOS_", "OTEL_")) and k not in ("DATABASE_URL", "REDIS_URL")
    }


def local_starter(workdir: Path) -> Starter:
    """Start a launch as a local process: `python` is this interpreter, mounts are folders."""

    def start(launch: Launch, log: Path) -> subprocess.Popen[bytes]:
        env = dict(launch.env)
        for mount, files in launch.files.items():
            folder = workdir / f"{launch.name}-{secrets.token_hex(3)}"
            folder.mkdir(parents=True)
            for name, text in files.items():
                (folder / name).write_text(text)
            env = {k: (str(folder) if v == mount else v) for k, v in env.items()}
        if "AUTOMATEOS_DATA_DIR" in env:
            env["AUTOMATEOS_DATA_DIR"] = str(workdir / f"data-{launch.name}")
        argv = [sys.executable if launch.argv[0] == "python" else launch.argv[0], *launch.argv[1:]]
        with open(log, "ab") as out:
            return subprocess.Popen(
                argv,
                env={**clean_environ(), **env},
                cwd=workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    return start


def run_to_completion(start: Starter, launch: Launch, workdir: Path, deadline_s: float) -> None:
    log = workdir / f"{launch.name}.log"
    proc = start(launch, log)
    try:
        code = proc.wait(deadline_s)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise AssertionError(f"{launch.name} still running after {deadline_s}s") from None
    assert code == 0, f"{launch.name} exited {code}:\n{log.read_text(errors='replace')[-4000:]}"


def wait_http_ok(running: Running, path: str, port: int, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        if running.proc.poll() is not None:
            raise AssertionError(f"{running.launch.name} exited:\n{running.tail()}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise AssertionError(
        f"{running.launch.name} {path} not 200 in {deadline_s}s: {last}\n{running.tail()}"
    )


@contextmanager
def running_plan(
    plan: Plan, start: Starter, workdir: Path, deadline_s: float = 90
) -> Iterator[dict[str, Running]]:
    """Migrate, start every service, wait for its readiness probe; stop all by pid at the end."""
    run_to_completion(start, plan.migrations, workdir, deadline_s)
    started: dict[str, Running] = {}
    try:
        for name, launch in plan.services.items():
            log = workdir / f"{name}.log"
            started[name] = Running(launch, start(launch, log), log)
        for running in started.values():
            assert running.launch.readiness is not None
            wait_http_ok(running, *running.launch.readiness, deadline_s)
        yield started
    finally:
        for running in started.values():
            stop_process(running.proc, timeout=30)


def push_webhook(plan: Plan, deadline_s: float = 60) -> dict[str, Any]:
    """Register, log in, create a workflow, call its webhook through the Ingress routes and wait
    for the run to succeed. Returns the finished run."""
    email = f"chart-{secrets.token_hex(6)}@example.com"
    password = "correct horse battery"
    with httpx.Client(timeout=10) as http:
        register = http.post(
            route(plan, "/auth/register"), json={"email": email, "password": password}
        )
        assert register.status_code == 201, register.text
        login = http.post(route(plan, "/auth/login"), json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        created = http.post(
            route(plan, "/workflows"),
            headers=headers,
            json={"name": "chart process test", "active": True, "nodes": HELLO_NODES},
        )
        assert created.status_code == 201, created.text
        hook_path = urlsplit(created.json()["webhook_url"]).path
        assert hook_path.startswith("/hooks/"), hook_path
        accepted = http.post(route(plan, hook_path), json={"hello": "world"})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        end = time.monotonic() + deadline_s
        run: dict[str, Any] = {}
        while time.monotonic() < end:
            response = http.get(route(plan, f"/runs/{run_id}"), headers=headers)
            assert response.status_code == 200, response.text
            run = response.json()
            if run["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        assert run.get("status") == "succeeded", run
        return run
