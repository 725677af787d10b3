"""Every request here targets 127.0.0.1 or is refused before any connection is opened."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from shared.nodes import EgressDenied, EgressPolicy, NodeError, build_http_client
from shared.nodes.egress import classify_address
from tests.shared.nodes.local_http import loopback_client


def _policy(value: str = "") -> EgressPolicy:
    return EgressPolicy.from_env(value)


class TestClassify:
    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("127.9.9.9", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("fd00::1", "private"),
            ("169.254.169.254", "link-local"),
            ("fe80::1", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("100.64.0.1", "carrier-grade NAT"),
            ("240.0.0.1", "reserved"),
            ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
            ("::ffff:169.254.169.254", "link-local (embedded in IPv6)"),
            ("64:ff9b::a00:1", "private (embedded in IPv6)"),
            ("2002:7f00:1::", "loopback (embedded in IPv6)"),
        ],
    )
    def test_internal_addresses_are_refused(self, address, reason):
        assert classify_address(ipaddress.ip_address(address)) == reason

    @pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700::1111"])
    def test_public_addresses_pass(self, address):
        assert classify_address(ipaddress.ip_address(address)) is None


class TestPolicyParsing:
    def test_empty_allowlist(self):
        assert _policy(None) == EgressPolicy()  # type: ignore[arg-type]
        assert _policy(" , ") == EgressPolicy()

    def test_hosts_ips_and_cidrs(self):
        policy = _policy("Example.internal, 10.0.0.0/8, 127.0.0.1 ,*.svc.local, ::1")
        assert policy.hosts == {"example.internal", "*.svc.local"}
        assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]

    @pytest.mark.parametrize("entry", ["10.0.0.0/33", "exa mple.com", "http://x.com"])
    def test_invalid_entry_raises(self, entry):
        with pytest.raises(ValueError, match="AUTOMATEOS_EGRESS_ALLOWLIST"):
            _policy(entry)

    def test_wildcard_matches_subdomains_only(self):
        policy = _policy("*.svc.local")
        assert policy.host_allowed("api.svc.local")
        assert not policy.host_allowed("svc.local")
        assert not policy.host_allowed("evilsvc.local")

    def test_cidr_allows_ipv4_mapped_form(self):
        policy = _policy("10.0.0.0/8")
        assert policy.address_allowed(ipaddress.ip_address("::ffff:10.1.1.1"))

    def test_denied_is_a_node_error(self):
        assert issubclass(EgressDenied, NodeError)
        assert not EgressDenied("x").retryable


class TestRefused:
    async def test_loopback_ip_refused_before_connecting(self, local_server):
        before = len(local_server.hits)
        async with build_http_client(_policy()) as client:
            with pytest.raises(EgressDenied, match=r"'127\.0\.0\.1'.*127\.0\.0\.1.*loopback"):
                await client.get(local_server.url("/echo"))
        assert len(local_server.hits) == before

    async def test_localhost_name_resolving_to_loopback_refused(self, local_server):
        port = httpx.URL(local_server.base_url).port
        async with build_http_client(_policy()) as client:
            with pytest.raises(EgressDenied, match=r"'localhost'.*loopback"):
                await client.get(f"http://localhost:{port}/echo")

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://192.168.0.1/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://2130706433/",
        ],
    )
    async def test_internal_addresses_refused(self, url):
        async with build_http_client(_policy()) as client:
            with pytest.raises(EgressDenied):
                await client.get(url)

    async def test_metadata_hostname_refused_without_lookup(self):
        async with build_http_client(_policy()) as client:
            with pytest.raises(EgressDenied, match="metadata"):
                await client.get("http://metadata.google.internal/computeMetadata/v1/")

    @pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.org/x"])
    async def test_non_http_schemes_refused(self, url):
        async with build_http_client(_policy()) as client:
            with pytest.raises(EgressDenied, match="not an absolute http"):
                await client.get(url)

    async def test_allowlisting_one_ip_does_not_open_the_range(self, local_server):
        port = httpx.URL(local_server.base_url).port
        async with build_http_client(_policy("127.0.0.1")) as client:
            with pytest.raises(EgressDenied, match=r"127\.0\.0\.2"):
                await client.get(f"http://127.0.0.2:{port}/echo")


class TestAllowed:
    async def test_allowlisted_ip(self, local_server):
        async with build_http_client(_policy("127.0.0.1")) as client:
            response = await client.get(local_server.url("/echo"))
        assert response.status_code == 200

    async def test_allowlisted_cidr(self, local_server):
        async with build_http_client(_policy("127.0.0.0/8")) as client:
            response = await client.get(local_server.url("/echo"))
        assert response.status_code == 200

    async def test_allowlisted_hostname(self, local_server):
        port = httpx.URL(local_server.base_url).port
        async with build_http_client(_policy("localhost")) as client:
            response = await client.get(f"http://localhost:{port}/echo")
        assert response.status_code == 200

    async def test_host_header_keeps_the_url_hostname(self, local_server):
        port = httpx.URL(local_server.base_url).port
        async with build_http_client(_policy("localhost")) as client:
            response = await client.get(f"http://localhost:{port}/echo")
        assert response.json()["headers"]["host"] == f"localhost:{port}"

    async def test_environment_proxy_is_ignored(self, local_server, monkeypatch):
        # A proxy would connect on our behalf, beyond the guard; the client must not use it.
        monkeypatch.setenv("HTTP_PROXY", "http://10.255.255.1:3128")
        monkeypatch.setenv("ALL_PROXY", "http://10.255.255.1:3128")
        async with build_http_client(_policy("127.0.0.1")) as client:
            response = await client.get(local_server.url("/echo"))
        assert response.status_code == 200


class TestRedirects:
    async def test_redirect_to_refused_address_is_refused(self, local_server):
        port = httpx.URL(local_server.base_url).port
        target = f"http://127.0.0.2:{port}/echo"
        async with loopback_client() as client:
            with pytest.raises(EgressDenied, match=r"127\.0\.0\.2"):
                await client.get(local_server.url("/redirect"), params={"to": target})

    async def test_redirect_to_metadata_is_refused(self, local_server):
        target = "http://169.254.169.254/latest/meta-data/"
        async with loopback_client() as client:
            with pytest.raises(EgressDenied, match=r"169\.254\.169\.254"):
                await client.get(local_server.url("/redirect"), params={"to": target})

    async def test_redirect_to_other_scheme_is_refused(self, local_server):
        async with loopback_client() as client:
            with pytest.raises(EgressDenied, match="file:"):
                await client.get(local_server.url("/redirect"), params={"to": "file:///etc/passwd"})

    async def test_redirect_to_allowed_address_is_followed(self, local_server):
        async with loopback_client() as client:
            response = await client.get(local_server.url("/redirect"), params={"to": "/echo"})
        assert response.status_code == 200
        assert response.json()["path"] == "/echo"
