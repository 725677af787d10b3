"""A real Prometheus (the Debian package's binary) on 127.0.0.1, scraping the local stack.

We start it ourselves with Popen, so we hold its pid and stop exactly that process. It scrapes
every second and evaluates the alert rules every second, so the test waits seconds, not minutes.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from scripts.localinfra import free_port, stop_process

SCRAPE_INTERVAL_S = 1


class QueryError(Exception):
    """Prometheus refused the query (it does not parse) or failed evaluating it."""


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float

    def api(self, path: str, **params: Any) -> Any:
        """GET /api/v1/<path>; the `data` of a success, QueryError otherwise."""
        response = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query now; the result vector (scalars become one unlabelled sample)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result

    def series(self, match: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = self.api("series", **{"match[]": match})
        return found

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_scrape_after(self, moment: float, jobs: list[str], deadline_s: float) -> None:
        """Block until every job has a sample scraped after `moment` (wall clock)."""
        end = time.monotonic() + deadline_s
        pending = set(jobs)
        while pending and time.monotonic() < end:
            for sample in self.query("timestamp(up)"):
                if float(sample["value"][1]) > moment:
                    pending.discard(sample["metric"].get("job", ""))
            if pending:
                time.sleep(0.25)
        if pending:
            raise TimeoutError(f"no scrape of {sorted(pending)} after {moment}")


def finite_samples(result: list[dict[str, Any]]) -> int:
    """How many samples carry a real number (histogram_quantile gives NaN without data)."""
    return sum(1 for sample in result if math.isfinite(float(sample["value"][1])))


def operator_target_labels(component: str, release: str = "automateos") -> dict[str, str]:
    """The target labels the Prometheus Operator adds when it scrapes a component through the
    chart's ServiceMonitor (auth, workflows, ingest) or PodMonitor (worker).

    The one that matters is `service`, the Kubernetes Service's name: it collides with the
    services' own `service` label, and only the monitors' `honorLabels: true` keeps theirs (else
    it arrives as `exported_service`). `job` stays the component name here; the dashboard takes
    any job names.
    """
    pod = f"{release}-{component}-5d8f7c9b6-x7k2p"
    labels = {"namespace": release, "pod": pod, "container": component}
    if component == "worker":
        return {**labels, "endpoint": "metrics"}
    return {**labels, "endpoint": "http", "service": f"{release}-{component}"}


def _config(
    targets: Mapping[str, str],
    rule_files: list[Path],
    target_labels: Mapping[str, Mapping[str, str]],
    honor_labels: bool,
) -> dict[str, Any]:
    return {
        "global": {
            "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
            "scrape_timeout": f"{SCRAPE_INTERVAL_S}s",
            "evaluation_interval": "1s",
        },
        "rule_files": [str(path) for path in rule_files],
        "scrape_configs": [
            {
                "job_name": job,
                "honor_labels": honor_labels,
                "static_configs": [
                    {"targets": [target], "labels": dict(target_labels.get(job, {}))}
                ],
            }
            for job, target in targets.items()
        ],
    }


@contextmanager
def running_prometheus(
    binary: str,
    base_dir: Path,
    targets: Mapping[str, str],
    rule_files: list[Path],
    target_labels: Mapping[str, Mapping[str, str]] | None = None,
    honor_labels: bool = False,
) -> Iterator[Prometheus]:
    """Prometheus scraping `targets` (job -> host:port) with `rule_files` loaded; each job's
    target gets `target_labels[job]`, and `honor_labels` settles collisions as the scrape
    config's option does."""
    base_dir.mkdir(parents=True, exist_ok=True)
    config = base_dir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(_config(targets, rule_files, target_labels or {}, honor_labels))
    )
    port = free_port()
    log_path = base_dir / "prometheus.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={base_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    prometheus = Prometheus(f"http://127.0.0.1:{port}", proc, log_path, time.time())
    try:
        end = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{prometheus.log_tail()}")
            try:
                if httpx.get(f"{prometheus.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"prometheus not ready:\n{prometheus.log_tail()}")
            time.sleep(0.1)
        yield prometheus
    finally:
        stop_process(proc, timeout=15)
