"""Least privilege in the rendered chart: each pod gets only the secrets its code reads, and egress
only to what it calls."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tests.deploy.chart import CHART, RenderError, name_of, render

DEFAULT = CHART / "ci" / "default-values.yaml"
DEV = CHART / "ci" / "dev-databases-values.yaml"
EXISTING = CHART / "ci" / "existing-secrets-values.yaml"

KEYS = "AUTOMATEOS_ENCRYPTION_KEYS"
SECRETS = {"DATABASE_URL", "REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "AUTOMATEOS_WEBHOOK_KEY", KEYS}
# What each component's code reads (grep for the settings' readers): the webhook key derives
# webhook URLs (workflows) and runs' resume URLs (worker: writes them; ingest: checks them); the
# encryption keys seal credentials and webhook secrets (workflows), open webhook secrets
# (ingest) and credentials (worker).
USES = {
    "auth": {"DATABASE_URL", "REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN"},
    "workflows": SECRETS,
    "ingest": {"REDIS_URL", "AUTOMATEOS_INTERNAL_TOKEN", "AUTOMATEOS_WEBHOOK_KEY", KEYS},
    "worker": {"DATABASE_URL", "REDIS_URL", "AUTOMATEOS_WEBHOOK_KEY", KEYS},
}
POSTGRES_PEER = {"ipBlock": {"cidr": "10.20.0.0/24"}}
REDIS_PEER = {"ipBlock": {"cidr": "10.20.1.0/24"}}


def _secret_env(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})}


class TestSecrets:
    @pytest.mark.parametrize("values", [DEFAULT, EXISTING], ids=["owned", "existing"])
    def test_each_pod_gets_only_the_secrets_it_reads(self, helm, values) -> None:
        manifest = render(helm, values)
        for component, used in USES.items():
            pod = manifest.component("Deployment", component)["spec"]["template"]["spec"]
            assert _secret_env(pod["containers"][0]) == used, component
            assert all("secret" not in v for v in pod.get("volumes", []) if component != "auth")

    def test_migrations_get_only_the_database_url_and_the_keys(self, helm) -> None:
        # The keys: migration 0004 seals the webhook secrets stored before it.
        manifest = render(helm, DEFAULT)
        [job] = [j for j in manifest.of_kind("Job") if "migrations" in j["metadata"]["name"]]
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert _secret_env(container) == {"DATABASE_URL", KEYS}
        hook_secret = manifest.secret_data(f"{job['metadata']['name']}")
        if hook_secret is not None:
            assert set(hook_secret) == {"DATABASE_URL", KEYS}


def _egress(manifest: Any, component: str) -> list[dict[str, Any]]:
    policy = manifest.component("NetworkPolicy", component)
    assert "Egress" in policy["spec"]["policyTypes"]
    rules: list[dict[str, Any]] = policy["spec"]["egress"]
    return rules


def _open_ports(rule: dict[str, Any]) -> set[int]:
    """Every TCP port a rule opens (a rule without ports opens all)."""
    if not rule.get("ports"):
        return set(range(1, 65536))
    ports: set[int] = set()
    for port in rule["ports"]:
        if port.get("protocol", "TCP") == "TCP" and isinstance(port["port"], int):
            ports |= set(range(port["port"], port.get("endPort", port["port"]) + 1))
    return ports


def _peers_for(rules: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = []
    for rule in rules:
        if port in _open_ports(rule):
            assert rule.get("to"), f"port {port} open to any destination: {rule}"
            peers += rule["to"]
    return peers


class TestEgress:
    @pytest.mark.parametrize("component", list(USES))
    def test_every_component_has_egress_rules_and_dns(self, helm, component: str) -> None:
        rules = _egress(render(helm, DEFAULT), component)
        assert any({p["port"] for p in r.get("ports", [])} == {53} for r in rules)

    @pytest.mark.parametrize("component", list(USES))
    def test_database_ports_reach_only_the_configured_peers(self, helm, component: str) -> None:
        rules = _egress(render(helm, DEFAULT), component)
        postgres = _peers_for(rules, 5432)
        assert postgres == ([POSTGRES_PEER] if "DATABASE_URL" in USES[component] else [])
        assert _peers_for(rules, 6379) == [REDIS_PEER]

    def test_in_cluster_databases_are_reached_by_pod_selector(self, helm) -> None:
        rules = _egress(render(helm, DEV), "worker")
        [postgres] = _peers_for(rules, 5432)
        [redis] = _peers_for(rules, 6379)
        assert postgres["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "postgresql"
        assert redis["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "redis"

    def test_only_the_worker_reaches_the_internet_and_never_private_ranges(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        for component in USES:
            blocks = [
                peer["ipBlock"]
                for rule in _egress(manifest, component)
                for peer in rule.get("to", [])
                if "ipBlock" in peer and peer["ipBlock"]["cidr"] == "0.0.0.0/0"
            ]
            if component != "worker":
                assert blocks == [], component
                continue
            [block] = blocks
            closed = [ipaddress.ip_network(cidr) for cidr in block["except"]]
            for private in ("10.0.0.1", "172.20.0.1", "192.168.1.1", "169.254.169.254"):
                assert any(ipaddress.ip_address(private) in net for net in closed)

    def test_service_calls_go_only_where_the_code_calls(self, helm) -> None:
        manifest = render(helm, DEFAULT)

        def pod_targets(component: str) -> set[str]:
            return {
                peer["podSelector"]["matchLabels"].get("app.kubernetes.io/component", "")
                for rule in _egress(manifest, component)
                for peer in rule.get("to", [])
                if "podSelector" in peer and "namespaceSelector" not in peer
            }

        assert pod_targets("workflows") == {"auth"}  # JWKS
        assert pod_targets("ingest") == {"workflows"}  # /internal/hooks
        assert pod_targets("auth") == set()
        assert pod_targets("worker") == set()

    def test_external_database_without_peers_is_refused(self, helm) -> None:
        values = {"networkPolicy": {"databaseEgress": {"postgresql": {"to": []}}}}
        with pytest.raises(RenderError, match=r"networkPolicy.databaseEgress.postgresql.to"):
            render(helm, DEFAULT, values=values)


class TestTrustedProxies:
    def test_the_ingress_controllers_ranges_reach_the_http_services(self, helm) -> None:
        values = {"config": {"trustedProxies": ["10.42.0.0/16", "10.43.0.5"]}}
        manifest = render(helm, DEFAULT, values=values)
        for component in ("auth", "workflows", "ingest"):
            env = manifest.container_env(component)
            assert env["AUTOMATEOS_TRUSTED_PROXIES"] == "10.42.0.0/16,10.43.0.5"
        assert "AUTOMATEOS_TRUSTED_PROXIES" not in manifest.container_env("worker")

    def test_auth_memory_limit_covers_the_hashing_bound(self, helm) -> None:
        manifest = render(helm, DEFAULT)
        pod = manifest.component("Deployment", "auth")["spec"]["template"]["spec"]
        limit = pod["containers"][0]["resources"]["limits"]["memory"]
        assert limit.endswith("Mi")
        concurrency = int(manifest.container_env("auth")["AUTOMATEOS_PASSWORD_HASH_CONCURRENCY"])
        # ~130 MiB resident + one legacy 64 MiB argon2 hash per slot (docs/kubernetes.md).
        assert int(limit[:-2]) >= 130 + 64 * concurrency


def test_name_of_is_the_release_prefix() -> None:
    assert name_of("auth").endswith("-auth")
