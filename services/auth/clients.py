"""Which client a login attempt counts against, across the console's internal hop.

The console logs in through the workflows service, so every console login reaches auth from the
workflows service's own address. Counting by that address would put every console user in one
throttling bucket: five wrong passwords for a victim's email, or twenty made-up emails, would
lock everyone out. So the workflows service names the browser's address in
`X-AutomateOS-Client`, and auth believes that header only next to the service-to-service secret
(`X-Internal-Token`, the one `/internal/*` calls carry). From anyone else the header is ignored
and the peer address (or what a trusted proxy forwarded, shared/serve.py) counts.
"""

from __future__ import annotations

import hmac

from fastapi import Request

FORWARDED_CLIENT_HEADER = "X-AutomateOS-Client"
INTERNAL_TOKEN_HEADER = "X-Internal-Token"  # noqa: S105 - a header name, not a secret
# An address is at most 45 characters (IPv6 with an embedded IPv4); more is not an address.
MAX_CLIENT_CHARS = 64


class LoginClients:
    """Names the client of a login request (one per auth process)."""

    def __init__(self, internal_token: str) -> None:
        self._token = internal_token.encode()

    def of(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        forwarded = request.headers.get(FORWARDED_CLIENT_HEADER)
        presented = request.headers.get(INTERNAL_TOKEN_HEADER)
        if not forwarded or presented is None:
            return peer
        if not self._token or not hmac.compare_digest(presented.encode(), self._token):
            return peer
        return forwarded.strip()[:MAX_CLIENT_CHARS] or peer
