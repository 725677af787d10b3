"""What the rendered chart must hold under every ci value set, and how values change it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.deploy.chart import (
    APP_COMPONENTS,
    CHART,
    FULLNAME,
    HTTP_COMPONENTS,
    Manifest,
    RenderError,
    name_of,
    pod_specs,
    render,
)

DEFAULT = CHART / "ci" / "default-values.yaml"
KEDA = CHART / "ci" / "keda-values.yaml"
DEV = CHART / "ci" / "dev-databases-values.yaml"
EXISTING = CHART / "ci" / "existing-secrets-values.yaml"
INGRESS = CHART / "ci" / "ingress-tls-values.yaml"

PUBLIC_ROUTES = {
    "/auth": "auth",
    "/.well-known": "auth",
    "/workflows": "workflows",
    "/runs": "workflows",
    "/nodes": "workflows",
    "/console": "workflows",
    "/hooks": "ingest",
}
PROBE_PATHS = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return pod.get("initContainers", []) + pod["containers"]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _alert_override(override: dict[str, Any]) -> dict[str, Any]:
    return {"monitoring": {"prometheusRule": {"alerts": {"AutomateOSNoWorkers": override}}}}


def _redis_triggers(manifest: Manifest) -> list[dict[str, Any]]:
    """One Redis trigger per priority list (docs/flow-control.md), all alike but the list."""
    triggers = manifest.component("ScaledObject", "worker")["spec"]["triggers"]
    redis = [t for t in triggers if t["type"] == "redis"]
    assert len(redis) == 3
    for trigger in redis[1:]:
        same = {k: v for k, v in trigger["metadata"].items() if k != "listName"}
        assert same == {k: v for k, v in redis[0]["metadata"].items() if k != "listName"}
        assert trigger.get("authenticationRef") == redis[0].get("authenticationRef")
    return redis


def _keda_list_length(manifest: Manifest) -> str:
    return str(_redis_triggers(manifest)[0]["metadata"]["listLength"])


def _keda_list(manifest: Manifest) -> str:
    """The normal-priority list; the others are it with `:high` and `:low` (checked here)."""
    names = [t["metadata"]["listName"] for t in _redis_triggers(manifest)]
    assert names[1:] == [f"{names[0]}:high", f"{names[0]}:low"]
    return str(names[0])


class TestEveryPod:
    def test_runs_as_non_root_with_a_read_only_root_and_no_capabilities(self, manifest) -> None:
        for where, pod in pod_specs(manifest):
            pod_ctx = pod.get("securityContext", {})
            assert pod_ctx.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert pod.get("automountServiceAccountToken") is False, where
            for container in _containers(pod):
                ctx = {**pod_ctx, **container.get("securityContext", {})}
                assert ctx.get("runAsNonRoot") is True, where
                assert ctx.get("runAsUser", 0) != 0, where
                assert ctx.get("readOnlyRootFilesystem") is True, where
                assert ctx.get("allowPrivilegeEscalation") is False, where
                assert ctx.get("capabilities", {}).get("drop") == ["ALL"], where

    def test_has_resource_requests_and_a_memory_limit(self, manifest) -> None:
        for where, pod in pod_specs(manifest):
            for container in _containers(pod):
                resources = container.get("resources", {})
                assert {"cpu", "memory"} <= set(resources.get("requests", {})), where
                assert "memory" in resources.get("limits", {}), where

    def test_long_running_containers_have_liveness_and_readiness_probes(self, manifest) -> None:
        for where, pod in pod_specs(manifest):
            if where.startswith(("Job/", "Pod/")):
                continue
            for container in pod["containers"]:
                assert "livenessProbe" in container, where
                assert "readinessProbe" in container, where

    def test_read_only_app_containers_get_a_writable_tmp(self, manifest) -> None:
        for component, deployment in manifest.deployments().items():
            pod = deployment["spec"]["template"]["spec"]
            mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], component


class TestComponents:
    def test_one_deployment_per_component_running_its_own_module(self, manifest) -> None:
        deployments = manifest.deployments()
        assert set(APP_COMPONENTS) <= set(deployments)
        for component in APP_COMPONENTS:
            container = deployments[component]["spec"]["template"]["spec"]["containers"][0]
            assert container["command"] == ["python", "-m", f"services.{component}"]

    def test_http_services_probe_healthz_and_readyz_on_their_port(self, manifest) -> None:
        for component in HTTP_COMPONENTS:
            container = manifest.component("Deployment", component)["spec"]["template"]["spec"][
                "containers"
            ][0]
            env = manifest.container_env(component)
            (port,) = container["ports"]
            assert port["name"] == "http"
            assert str(port["containerPort"]) == env["AUTOMATEOS_PORT"]
            for probe, path in PROBE_PATHS.items():
                assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe

    def test_worker_has_no_service_and_probes_its_metrics_port(self, manifest) -> None:
        assert manifest.find("Service", name_of("worker")) is None
        container = manifest.component("Deployment", "worker")["spec"]["template"]["spec"][
            "containers"
        ][0]
        (port,) = container["ports"]
        assert port["name"] == "metrics"
        assert (
            str(port["containerPort"])
            == manifest.container_env("worker")["AUTOMATEOS_METRICS_PORT"]
        )
        for probe, path in PROBE_PATHS.items():
            assert container[probe]["httpGet"] == {"path": path, "port": "metrics"}, probe
        assert container["args"][0] == "--processes"

    def test_services_select_their_deployment_and_target_a_named_port(self, manifest) -> None:
        for component in HTTP_COMPONENTS:
            service = manifest.component("Service", component)
            pod = manifest.component("Deployment", component)["spec"]["template"]
            assert _selects(service["spec"]["selector"], pod["metadata"]["labels"])
            names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
            assert {p["targetPort"] for p in service["spec"]["ports"]} <= names

    def test_standard_labels_with_component(self, manifest) -> None:
        for obj in manifest.objects:
            labels = obj["metadata"].get("labels", {})
            assert labels.get("app.kubernetes.io/instance") == "ci", obj["metadata"]["name"]
            assert labels.get("app.kubernetes.io/name") == "automateos"
            assert labels.get("app.kubernetes.io/managed-by") == "Helm"

    def test_production_settings_listening_on_all_interfaces(self, manifest) -> None:
        for component in APP_COMPONENTS:
            env = manifest.container_env(component)
            assert env["AUTOMATEOS_ENV"] == "production", component
            assert env["AUTOMATEOS_HOST"] == "0.0.0.0", component

    def test_secret_variables_come_from_secrets_with_strong_values(self, manifest) -> None:
        # Each component gets only what it reads (tests/deploy/test_least_privilege.py).
        for component in APP_COMPONENTS:
            env = manifest.container_env(component)
            assert "REDIS_URL" in env, component
            # None: the value lives in an existing Secret the chart does not render.
            for secret in ("AUTOMATEOS_INTERNAL_TOKEN", "AUTOMATEOS_WEBHOOK_KEY"):
                value = env.get(secret)
                assert value is None or len(value) >= 32, (component, secret)

    def test_pdb_per_component(self, manifest) -> None:
        pdbs = manifest.of_kind("PodDisruptionBudget")
        for component, deployment in manifest.deployments().items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert any(_selects(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs), (
                component
            )


class TestSigningKeys:
    def test_auth_mounts_ed25519_keys_named_by_key_id_where_the_env_points(self, manifest) -> None:
        pod = manifest.component("Deployment", "auth")["spec"]["template"]["spec"]
        keys_dir = manifest.container_env("auth")["AUTOMATEOS_SIGNING_KEYS_DIR"]
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == keys_dir]
        assert mount["readOnly"] is True
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        files = manifest.secret_data(volume["secret"]["secretName"])
        if files is None:
            return  # an existing Secret, managed outside the chart
        assert files
        for name, pem in files.items():
            assert name.endswith(".pem")
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            assert isinstance(key, Ed25519PrivateKey)

    def test_only_auth_gets_the_private_keys(self, manifest) -> None:
        for component in ("workflows", "ingest", "worker"):
            pod = manifest.component("Deployment", component)["spec"]["template"]["spec"]
            assert not any("secret" in v for v in pod["volumes"]), component


class TestIngress:
    def test_public_routes_go_to_their_component_and_internal_is_never_routed(self, helm) -> None:
        manifest = render(helm, INGRESS)
        (ingress,) = manifest.of_kind("Ingress")
        for rule in ingress["spec"]["rules"]:
            routes = {}
            for path in rule["http"]["paths"]:
                assert not path["path"].startswith("/internal")
                assert path["pathType"] == "Prefix"
                backend = path["backend"]["service"]
                service = manifest.get("Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
                routes[path["path"]] = service["metadata"]["labels"]["app.kubernetes.io/component"]
            assert routes == PUBLIC_ROUTES

    def test_tls_and_public_url_follow_the_host(self, helm) -> None:
        manifest = render(helm, INGRESS)
        (ingress,) = manifest.of_kind("Ingress")
        assert ingress["spec"]["tls"][0]["hosts"] == ["automate.example.com"]
        assert (
            manifest.container_env("workflows")["AUTOMATEOS_PUBLIC_URL"]
            == "https://automate.example.com"
        )

    def test_no_ingress_unless_enabled(self, helm) -> None:
        assert render(helm, DEFAULT).of_kind("Ingress") == []


class TestScaling:
    def test_keda_watches_the_list_of_the_queue_the_worker_consumes(self, manifest) -> None:
        if manifest.find("ScaledObject", name_of("worker")) is None:
            pytest.skip("KEDA off in this value set")
        queue = manifest.container_env("worker")["AUTOMATEOS_QUEUE_NAME"]
        assert _keda_list(manifest) == f"rq:queue:{queue}"
        # Producers enqueue on the same queue.
        for component in ("ingest", "workflows"):
            assert manifest.container_env(component)["AUTOMATEOS_QUEUE_NAME"] == queue

    def test_changing_the_queue_name_changes_worker_and_keda_together(self, helm) -> None:
        before = render(helm, KEDA)
        after = render(helm, KEDA, values={"config": {"queueName": "bulk-imports"}})
        assert before.container_env("worker")["AUTOMATEOS_QUEUE_NAME"] == "automateos-high"
        assert _keda_list(before) == "rq:queue:automateos-high"
        assert after.container_env("worker")["AUTOMATEOS_QUEUE_NAME"] == "bulk-imports"
        assert _keda_list(after) == "rq:queue:bulk-imports"
        (prom,) = [
            t
            for t in after.component("ScaledObject", "worker")["spec"]["triggers"]
            if t["type"] == "prometheus"
        ]
        assert 'queue=~"bulk-imports(:high|:low)?"' in prom["metadata"]["query"]

    def test_keda_targets_one_pod_worth_of_jobs_by_default(self, helm) -> None:
        # A pod takes processes x concurrency jobs off the list at once. The CI value set pins
        # listLength; null lifts the pin back to the default.
        keda = {"listLength": None, "prometheus": {"threshold": None}}
        values = {"worker": {"processes": 3, "concurrency": 16, "autoscaling": {"keda": keda}}}
        manifest = render(helm, KEDA, values=values)
        pod = manifest.component("Deployment", "worker")["spec"]["template"]["spec"]
        assert pod["containers"][0]["args"] == ["--processes", "3", "--concurrency", "16"]
        triggers = manifest.component("ScaledObject", "worker")["spec"]["triggers"]
        by_type = {t["type"]: t["metadata"] for t in triggers}
        assert by_type["redis"]["listLength"] == "48"
        assert by_type["prometheus"]["threshold"] == "48"
        # Pinned (the CI value set's 8): used as given.
        assert _keda_list_length(render(helm, KEDA)) == "8"

    def test_keda_reaches_redis_as_the_url_says(self, helm) -> None:
        manifest = render(helm, KEDA)
        redis = _redis_triggers(manifest)[0]
        assert redis["metadata"]["address"] == "redis.example.internal:6380"
        assert redis["metadata"]["databaseIndex"] == "2"
        assert redis["metadata"]["enableTLS"] == "true"
        auth = manifest.get("TriggerAuthentication", redis["authenticationRef"]["name"])
        (ref,) = auth["spec"]["secretTargetRef"]
        assert ref["parameter"] == "password"
        assert manifest.secret_data(ref["name"])[ref["key"]] == "s3cret"

    def test_keda_with_in_cluster_redis_targets_its_service(self, helm) -> None:
        manifest = render(helm, DEV)
        scaled = manifest.component("ScaledObject", "worker")
        redis = _redis_triggers(manifest)[0]
        assert redis["metadata"]["address"] == f"{name_of('redis')}:6379"
        assert manifest.find("Service", name_of("redis")) is not None
        assert scaled["spec"]["scaleTargetRef"]["name"] == name_of("worker")

    def test_hpa_fallback_for_workers_only_when_keda_is_off(self, helm) -> None:
        without = render(helm, DEFAULT)
        hpa = without.component("HorizontalPodAutoscaler", "worker")
        assert hpa["spec"]["scaleTargetRef"]["name"] == name_of("worker")
        assert without.find("ScaledObject", name_of("worker")) is None
        with_keda = render(helm, KEDA)
        assert with_keda.find("HorizontalPodAutoscaler", name_of("worker")) is None

    def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(self, manifest) -> None:
        targets = {
            h["spec"]["scaleTargetRef"]["name"] for h in manifest.of_kind("HorizontalPodAutoscaler")
        } | {s["spec"]["scaleTargetRef"]["name"] for s in manifest.of_kind("ScaledObject")}
        for deployment in manifest.of_kind("Deployment"):
            scaled = deployment["metadata"]["name"] in targets
            assert ("replicas" in deployment["spec"]) is not scaled, deployment["metadata"]["name"]

    def test_ingest_has_a_cpu_hpa_by_default(self, helm) -> None:
        hpa = render(helm, DEFAULT).component("HorizontalPodAutoscaler", "ingest")
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"

    def test_worker_grace_period_covers_the_job_timeout(self, manifest) -> None:
        pod = manifest.component("Deployment", "worker")["spec"]["template"]["spec"]
        timeout = int(manifest.container_env("worker")["AUTOMATEOS_JOB_TIMEOUT_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] >= timeout

    def test_grace_period_follows_a_longer_job_timeout(self, helm) -> None:
        manifest = render(helm, DEFAULT, values={"config": {"jobTimeoutSeconds": 3600}})
        pod = manifest.component("Deployment", "worker")["spec"]["template"]["spec"]
        assert pod["terminationGracePeriodSeconds"] >= 3600

    def test_a_grace_period_shorter_than_the_job_timeout_is_refused(self, helm) -> None:
        with pytest.raises(RenderError, match="terminationGracePeriodSeconds"):
            render(helm, DEFAULT, values={"worker": {"terminationGracePeriodSeconds": 60}})


class TestConfigChecksums:
    @staticmethod
    def _checksums(manifest: Manifest) -> dict[str, str]:
        return {
            component: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for component, d in manifest.deployments().items()
        }

    def test_a_setting_restarts_only_the_components_that_read_it(self, helm) -> None:
        before = self._checksums(render(helm, INGRESS))
        after = self._checksums(
            render(helm, INGRESS, values={"config": {"dedupeTtlSeconds": 3600}})
        )
        changed = {c for c in before if before[c] != after[c]}
        assert changed == {"ingest"}

    def test_a_shared_setting_restarts_every_component(self, helm) -> None:
        before = self._checksums(render(helm, INGRESS))
        after = self._checksums(render(helm, INGRESS, values={"config": {"queueName": "other"}}))
        assert all(before[c] != after[c] for c in APP_COMPONENTS)


class TestSecrets:
    def test_existing_secrets_mean_the_chart_renders_none_of_its_own(self, helm) -> None:
        manifest = render(helm, EXISTING)
        assert manifest.of_kind("Secret") == []
        env = manifest.component("Deployment", "workflows")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env}
        assert refs["DATABASE_URL"] == {"name": "automateos-db", "key": "url"}
        assert refs["REDIS_URL"] == {"name": "automateos-redis", "key": "url"}
        assert refs["AUTOMATEOS_INTERNAL_TOKEN"]["name"] == "automateos-app"
        assert refs["AUTOMATEOS_ENCRYPTION_KEYS"] == {
            "name": "automateos-app",
            "key": "AUTOMATEOS_ENCRYPTION_KEYS",
        }
        pod = manifest.component("Deployment", "auth")["spec"]["template"]["spec"]
        (keys,) = [v for v in pod["volumes"] if "secret" in v]
        assert keys["secret"]["secretName"] == "automateos-signing-keys"

    def test_generated_secrets_are_the_same_in_the_secret_and_the_migration_hook(
        self, helm
    ) -> None:
        manifest = render(helm, DEFAULT)
        main = manifest.secret_data(FULLNAME)
        hook = manifest.secret_data(name_of("migrations"))
        assert main
        assert hook
        for key, value in hook.items():
            assert main[key] == value

    def test_explicit_values_are_used(self, helm) -> None:
        manifest = render(helm, INGRESS)
        env = manifest.container_env("workflows")
        assert env["AUTOMATEOS_WEBHOOK_KEY"] == "ci-webhook-key-0123456789abcdefghijklmnopqrstu"
        assert (
            env["AUTOMATEOS_ENCRYPTION_KEYS"]
            == "ci2026:Y2ktdGhyb3dhd2F5LWVuY3J5cHRpb24ta2V5LTAxMjM="
        )
        assert env["DATABASE_URL"].startswith("postgresql://automateos:secret@db.example.internal")


class TestMigrations:
    def test_runs_as_a_pre_install_pre_upgrade_hook(self, helm) -> None:
        job = render(helm, DEFAULT).component("Job", "migrations")
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["python", "-m", "shared.db", "upgrade"]

    def test_its_secret_is_a_hook_created_before_the_job(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        secret = manifest.get("Secret", name_of("migrations"))
        job = manifest.component("Job", "migrations")
        assert (
            secret["metadata"]["annotations"]["helm.sh/hook"]
            == job["metadata"]["annotations"]["helm.sh/hook"]
        )
        assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
            job["metadata"]["annotations"]["helm.sh/hook-weight"]
        )
        env = job["spec"]["template"]["spec"]["containers"][0]["env"]
        names = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
        assert names == {name_of("migrations")}

    def test_with_the_in_cluster_database_it_runs_after_install_once_it_listens(self, helm) -> None:
        job = render(helm, DEV).component("Job", "migrations")
        assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
        (wait,) = job["spec"]["template"]["spec"]["initContainers"]
        assert wait["command"][-2:] == [name_of("postgresql"), "5432"]

    def test_does_not_need_the_release_service_account(self, helm) -> None:
        # Hooks run before the release's objects exist, its ServiceAccount included.
        job = render(helm, DEFAULT).component("Job", "migrations")
        assert "serviceAccountName" not in job["spec"]["template"]["spec"]
        existing = {"serviceAccount": {"create": False, "name": "db-iam"}}
        job = render(helm, DEFAULT, values=existing).component("Job", "migrations")
        assert job["spec"]["template"]["spec"]["serviceAccountName"] == "db-iam"


class TestDevDatabases:
    def test_redis_keeps_an_append_only_file_on_a_volume(self, helm) -> None:
        redis = render(helm, DEV).get("StatefulSet", name_of("redis"))
        container = redis["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        assert args[args.index("--appendonly") + 1] == "yes"
        data_mount = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}[
            args[args.index("--dir") + 1]
        ]
        assert data_mount in {t["metadata"]["name"] for t in redis["spec"]["volumeClaimTemplates"]}

    def test_redis_is_bounded_and_never_evicts(self, helm) -> None:
        # An evicted key could be an accepted job: a full Redis must refuse writes instead
        # (ingest answers 503 before that), and its bound must sit below the memory limit.
        redis = render(helm, DEV).get("StatefulSet", name_of("redis"))
        container = redis["spec"]["template"]["spec"]["containers"][0]
        args = container["args"]
        assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
        assert args[args.index("--maxmemory") + 1] == "384mb"
        assert container["resources"]["limits"]["memory"] == "512Mi"
        resized = render(helm, DEV, values={"redis": {"inCluster": {"maxmemory": "1gb"}}})
        args = resized.get("StatefulSet", name_of("redis"))["spec"]["template"]["spec"][
            "containers"
        ][0]["args"]
        assert args[args.index("--maxmemory") + 1] == "1gb"

    def test_apps_point_at_the_in_cluster_services(self, helm) -> None:
        manifest = render(helm, DEV)
        env = manifest.container_env("worker")
        assert f"@{name_of('postgresql')}:5432/" in env["DATABASE_URL"]
        assert env["REDIS_URL"] == f"redis://{name_of('redis')}:6379/0"


class TestNetworkPolicies:
    # Egress per component: tests/deploy/test_least_privilege.py.

    def test_worker_accepts_only_the_metrics_scraper(self, helm) -> None:
        policy = render(helm, DEFAULT).component("NetworkPolicy", "worker")
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]

    def test_http_components_accept_the_ingress_controller(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        for component in HTTP_COMPONENTS:
            policy = manifest.component("NetworkPolicy", component)
            peers = [peer for rule in policy["spec"]["ingress"] for peer in rule["from"]]
            assert {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}
                }
            } in peers

    def test_dev_databases_accept_only_this_release(self, helm) -> None:
        manifest = render(helm, DEV)
        for component in ("postgresql", "redis"):
            (rule,) = manifest.component("NetworkPolicy", component)["spec"]["ingress"]
            (peer,) = rule["from"]
            assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "ci"


class TestMonitoring:
    def test_service_monitors_scrape_the_http_port_and_the_pod_monitor_the_worker(
        self, helm
    ) -> None:
        manifest = render(helm, KEDA)
        for component in HTTP_COMPONENTS:
            monitor = manifest.component("ServiceMonitor", component)
            service = manifest.component("Service", component)
            assert _selects(
                monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]
            )
            assert monitor["spec"]["endpoints"][0]["port"] == "http"
            assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
            # Keeps the services' own `service` label, which the dashboard and alerts select on
            # (the metrics test scrapes with honor_labels and the operator's target labels).
            assert monitor["spec"]["endpoints"][0]["honorLabels"] is True
        pod_monitor = manifest.component("PodMonitor", "worker")
        labels = manifest.component("Deployment", "worker")["spec"]["template"]["metadata"][
            "labels"
        ]
        assert _selects(pod_monitor["spec"]["selector"]["matchLabels"], labels)
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True

    def test_off_by_default(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        assert manifest.of_kind("ServiceMonitor") == manifest.of_kind("PodMonitor") == []
        assert manifest.of_kind("PrometheusRule") == []
        assert manifest.find("ConfigMap", f"{FULLNAME}-dashboards") is None

    def test_dashboard_configmap_for_the_grafana_sidecar(self, helm) -> None:
        configmap = render(helm, KEDA).get("ConfigMap", f"{FULLNAME}-dashboards")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["annotations"] == {"grafana_folder": "AutomateOS"}
        dashboard = json.loads(configmap["data"]["automateos.json"])
        assert dashboard["uid"] == "automateos-overview"

    def test_alert_rules_with_the_value_set_overrides(self, helm) -> None:
        # kubernetes-validate does not know PrometheusRule: the shape the operator reads, here.
        (rule,) = render(helm, KEDA).of_kind("PrometheusRule")
        assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        alerts = {}
        for group in rule["spec"]["groups"]:
            assert group["name"]
            assert group["rules"]
            for alert in group["rules"]:
                assert {"alert", "expr", "labels"} <= set(alert), alert
                assert alert["labels"]["team"] == "automation"
                assert alert["labels"]["severity"]
                alerts[alert["alert"]] = alert
        assert "AutomateOSNoWorkers" not in alerts
        failure_ratio = alerts["AutomateOSRunFailureRatioHigh"]
        assert "> 0.3 # threshold" in failure_ratio["expr"]
        assert failure_ratio["for"] == "15m"


class TestHelmTest:
    def test_checks_readyz_of_every_service(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        (pod,) = manifest.of_kind("Pod")
        assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
        urls = pod["spec"]["containers"][0]["args"]
        for component in HTTP_COMPONENTS:
            service = manifest.component("Service", component)
            port = service["spec"]["ports"][0]["port"]
            assert f"http://{service['metadata']['name']}:{port}/readyz" in urls


class TestValuesSchema:
    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"config": {"queueName": "has spaces"}}, "queueName"),
            ({"secrets": {"internalToken": "short"}}, "internalToken"),
            ({"worker": {"procesess": 2}}, "procesess"),
            ({"config": {"maxBodyBytes": 20 * 1024 * 1024}}, "maxBodyBytes"),
            ({"worker": {"autoscaling": {"keda": {"minReplicas": -1}}}}, "minReplicas"),
            ({"database": {"url": "mysql://x"}}, "url"),
            ({"monitoring": {"dashboards": {"enabeld": True}}}, "enabeld"),
            ({"monitoring": {"dashboards": {"labels": {"grafana_dashboard": 1}}}}, "grafana"),
            ({"monitoring": {"prometheusRule": {"additionalLabel": {}}}}, "additionalLabel"),
            (_alert_override({"threshhold": 45}), "threshhold"),
            (_alert_override({"for": "5 min"}), "for"),
        ],
    )
    def test_rejects_bad_values(self, helm, values, message) -> None:
        with pytest.raises(RenderError, match=message):
            render(helm, DEFAULT, values=values)

    def test_an_install_without_a_database_says_what_to_set(self, helm) -> None:
        with pytest.raises(RenderError, match=r"database\.url"):
            render(helm)

    def test_existing_redis_secret_with_keda_needs_an_address(self, helm) -> None:
        values = {
            "redis": {"url": "", "existingSecret": "r"},
            "worker": {"autoscaling": {"keda": {"enabled": True}}},
        }
        with pytest.raises(RenderError, match=r"keda\.redis\.address"):
            render(helm, DEFAULT, values=values)

    def test_values_yaml_documents_every_top_level_section_in_the_schema(self) -> None:
        yaml = pytest.importorskip("yaml")
        schema = json.loads((CHART / "values.schema.json").read_text())
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        assert set(values) <= set(schema["properties"])
