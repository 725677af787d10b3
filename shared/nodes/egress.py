"""SSRF guard for every outgoing request a node makes.

Workflows are user-written, so the HTTP node must not become a way into the cluster: loopback,
private, link-local (cloud metadata), CGNAT, multicast and reserved addresses are refused unless
`AUTOMATEOS_EGRESS_ALLOWLIST` lets them through.

The check sits in the connection layer (an httpcore network backend), after DNS resolution, and
the socket is opened to the very address that was vetted: a name that resolves to a public
address at check time and to 127.0.0.1 a moment later (DNS rebinding) cannot slip through, and
each redirect hop opens a new connection that is vetted again. TLS still verifies the URL's
hostname because httpcore passes the origin's host as `server_hostname`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpcore
import httpx

from shared.nodes.contract import NodeError
from shared.nodes.credential_binding import check_request
from shared.nodes.http_pool import CheapReadability, LinearConnectionPool

__all__ = ["EgressDenied", "EgressPolicy", "GuardedNetworkBackend", "build_http_client"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOWED_SCHEMES = frozenset({"http", "https"})

# Names that reach instance metadata without going through an address we could recognise
# (some resolvers answer them specially); refused by name before any lookup.
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata"})

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOSTNAME = re.compile(r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$")


class EgressDenied(NodeError):
    """An outgoing request was refused by the egress policy (not retryable)."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    # IPv6 forms that carry an IPv4 address the kernel or a gateway may route to it.
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def classify_address(address: IPAddress) -> str | None:
    """Return why `address` is refused by default ("loopback", "private", ...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = classify_address(embedded)
            return f"{reason} (embedded in IPv6)" if reason else None
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("carrier-grade NAT", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    )
    for reason, hit in checks:
        if hit:
            return reason
    # Whatever the stdlib does not call global (documentation, benchmarking, ...) is no
    # legitimate destination either.
    if not address.is_global:
        return "non-global"
    return None


def _normalise(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class EgressPolicy:
    """Which destinations may be reached despite the default refusals.

    `hosts` are lower-case names (a leading `*.` matches any subdomain); `networks` are IPs
    and CIDRs. An empty policy refuses every non-public address.
    """

    hosts: frozenset[str] = field(default_factory=frozenset)
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_env(cls, value: str | None) -> EgressPolicy:
        """Parse `AUTOMATEOS_EGRESS_ALLOWLIST`: comma-separated hostnames, IPs or CIDRs.

        Raises ValueError on an entry that is neither, so a typo fails at start-up instead of
        silently leaving a destination blocked or open.
        """
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in (value or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                if "/" in entry or ":" in entry or not _HOSTNAME.match(entry):
                    raise ValueError(
                        f"AUTOMATEOS_EGRESS_ALLOWLIST: {entry!r} is neither a hostname nor an "
                        "IP address or CIDR"
                    ) from None
            hosts.add(entry.lower().rstrip("."))
        return cls(hosts=frozenset(hosts), networks=tuple(networks))

    def host_allowed(self, host: str) -> bool:
        """Tell whether `host` is allowlisted by name."""
        name = host.lower().rstrip(".")
        if name in self.hosts:
            return True
        return any(
            entry.startswith("*.") and name.endswith(entry[1:]) and name != entry[2:]
            for entry in self.hosts
        )

    def address_allowed(self, address: IPAddress) -> bool:
        """Tell whether `address` is allowlisted by an IP/CIDR entry."""
        candidates = {address, _normalise(address)}
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)

    def check_host(self, host: str) -> None:
        """Refuse a host by name before any lookup (metadata names); raise EgressDenied."""
        name = host.lower().rstrip(".")
        if name in METADATA_HOSTNAMES and not self.host_allowed(name):
            raise EgressDenied(f"egress to {host!r} refused: cloud metadata host")

    def check_address(self, host: str, address: IPAddress) -> None:
        """Refuse `address` (resolved from `host`) unless it is public or allowlisted."""
        if self.host_allowed(host) or self.address_allowed(address):
            return
        reason = classify_address(address)
        if reason is not None:
            raise EgressDenied(
                f"egress to {host!r} refused: it resolves to {address} ({reason} address; "
                "allow it with AUTOMATEOS_EGRESS_ALLOWLIST)"
            )

    def check_url(self, url: httpx.URL) -> None:
        """Refuse a URL whose scheme is not http(s) or whose host is refused by name."""
        if url.scheme not in ALLOWED_SCHEMES or not url.host:
            # httpx turns a host-less URL such as file:///etc/passwd into a relative one with
            # no scheme, hence one message for both.
            raise EgressDenied(f"egress refused: {str(url)[:200]!r} is not an absolute http(s) URL")
        self.check_host(url.host)


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore backend that resolves, vets and then connects to the vetted address only."""

    def __init__(
        self, policy: EgressPolicy, backend: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        # httpcore's own choice under asyncio; only the address it is given changes.
        self._backend = backend or httpcore.AnyIOBackend()

    async def _resolve(self, host: str, port: int, lookup_timeout: float | None) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), lookup_timeout
            )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"DNS lookup of {host!r} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"DNS lookup of {host!r} failed: {exc}") from exc
        addresses: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            # Scoped IPv6 addresses come back as "fe80::1%eth0"; the scope does not change
            # what the address is.
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if address not in addresses:
                addresses.append(address)
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Resolve `host`, refuse it if any address is refused, connect to a vetted address."""
        self._policy.check_host(host)
        addresses = await self._resolve(host, port, timeout)
        # Every address must pass: a name that mixes public and internal answers is suspect,
        # and refusing it whole keeps the outcome independent of which address we try first.
        for address in addresses:
            self._policy.check_address(host, address)
        last_error: Exception | None = None
        for address in addresses:
            try:
                stream = await self._backend.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return CheapReadability(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise httpcore.ConnectError(f"DNS lookup of {host!r} returned no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 -- httpcore's signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Unix sockets reach local services only; never allowed."""
        raise EgressDenied("egress refused: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        """Delegate to the wrapped backend (httpcore uses it between connect retries)."""
        await self._backend.sleep(seconds)


def build_http_client(policy: EgressPolicy, *, timeout: float = 30.0) -> httpx.AsyncClient:
    """Build the shared, SSRF-guarded client a process hands to every node run.

    Build it once per event loop (the worker per job loop or process) and close it with
    `aclose()`; connections are pooled across runs. Proxies from the environment are ignored
    (`trust_env=False`) because a proxy would connect on our behalf, beyond the guard.
    """
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=30)
    transport = httpx.AsyncHTTPTransport(limits=limits, trust_env=False)
    # httpx offers no parameter for the network backend, so the pool it built is replaced by one
    # that connects through the guard (and keeps its books in linear time, http_pool.py).
    transport._pool = LinearConnectionPool(
        # SSL_CERT_FILE/SSL_CERT_DIR stay honoured: a custom CA is operator config, not a bypass.
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=GuardedNetworkBackend(policy),
    )

    async def vet_request(request: httpx.Request) -> None:
        # Runs for the first request and again for every redirect hop.
        policy.check_url(request.url)
        # Credentials go only where they were meant to (shared/nodes/credential_binding.py).
        check_request(request)

    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=True,
        max_redirects=5,
        trust_env=False,
        event_hooks={"request": [vet_request]},
    )
