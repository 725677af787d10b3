"""Credentials stay with the origin they were meant for, across redirects and hosts.

While a node runs with credentials, the engine binds them (`bound(...)`): which request headers
carry a credential (a `params.credential` header, a header whose template reads `secrets`),
whether the body does, and the hosts each credential may be sent to (`allowed_hosts`). Every
request of the shared client, the first and each redirect hop, then passes `check_request`:

- a request to a host outside a credential's `allowed_hosts` fails before anything is sent;
- a redirect to another origin (scheme, host or port) loses every credential-carrying header,
  not only `Authorization` (which is all httpx drops), and one that would re-send a body
  carrying a secret fails instead.

Any node that sends through `ctx.http` gets this; nodes do not need to know.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import httpx

from shared.nodes.contract import NodeError

# The origin of the first request of a send, kept in the request's extensions (httpx hands the
# same extensions to every redirect hop).
_ORIGIN = "automateos.origin"


class CredentialMisdirected(NodeError):
    """A credential would go to a host or origin it is not meant for (not retryable)."""


@dataclass(frozen=True)
class CredentialBinding:
    """What of a request carries credentials, and where each credential may go."""

    headers: frozenset[str] = frozenset()  # lower-case names
    body: bool = False
    allowed_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # name -> hosts


_BINDING: ContextVar[CredentialBinding | None] = ContextVar(
    "automateos_credential_binding", default=None
)


@contextmanager
def bound(binding: CredentialBinding | None) -> Iterator[None]:
    """Apply `binding` to every request sent in this context (a node's run)."""
    token = _BINDING.set(binding)
    try:
        yield
    finally:
        _BINDING.reset(token)


def host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    """`host` is one of `patterns`: an exact name or address, or `*.suffix` (subdomains only)."""
    name = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and name != pattern[2:]:
                return True
        elif name == pattern:
            return True
    return False


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), url.port or default


def check_request(request: httpx.Request) -> None:
    """The shared client's request hook (shared/nodes/egress.py); a no-op when nothing is bound."""
    binding = _BINDING.get()
    if binding is None:
        return
    first = request.extensions.setdefault(_ORIGIN, _origin(request.url))
    if _origin(request.url) != first:
        for name in binding.headers:
            if name in request.headers:
                del request.headers[name]
        if binding.body and request.method not in ("GET", "HEAD"):
            raise CredentialMisdirected(
                f"redirected to another origin ({request.url.host}) with a body that carries a "
                "secret; not followed"
            )
        return  # nothing of the credentials goes along
    for name, hosts in sorted(binding.allowed_hosts.items()):
        if not host_matches(request.url.host, hosts):
            raise CredentialMisdirected(
                f"credential {name!r} may be sent only to {', '.join(hosts)}; "
                f"not to {request.url.host}"
            )
