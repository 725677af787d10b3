"""The one redaction rule: which keys and URL parts are credentials in anything we show.

The worker applies it to every step record and to a run's trigger headers; the workflows service
applies it to a queued run's trigger before any worker has recorded it, so a run reads the same
from its 202 to its end.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"
# Keys whose values are credentials wherever they appear (headers, query, JSON bodies).
SENSITIVE_KEY = re.compile(
    r"authorization|password|passwd|secret|token|api[-_]?key|cookie|credential|private[-_]?key"
    # Webhook signatures (x-hub-signature-256, webhook-signature, x-shopify-hmac-sha256): a
    # signature replayed with its body is a valid delivery, so it is a credential too.
    r"|signature|hmac"
    # Vendor key headers: AWS access keys, Azure's functions and subscription keys.
    r"|(?:access|functions|subscription)[-_]?key",
    re.IGNORECASE,
)


def _redact_url(url: str) -> str:
    # `https://user:pw@host/x?api_key=...`: the key is "url", but parts of it are credentials.
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        if ":" in userinfo:
            netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = []
        for pair in query.split("&"):
            name, eq, _value = pair.partition("=")
            secret = eq and SENSITIVE_KEY.search(unquote(name))
            pairs.append(f"{name}={REDACTED}" if secret else pair)
        query = "&".join(pairs)
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _is_placeholder(value: Any) -> bool:
    # "[credential <name>]" stands where a credential was used and names no secret itself.
    return isinstance(value, str) and value.startswith("[credential ") and value.endswith("]")


def redact(value: Any, secret_keys: Collection[str] = ()) -> Any:
    """Return a copy of `value` with credentials replaced by "[redacted]".

    `secret_keys` are the node's top-level `secret_params`; below them, any mapping key that
    looks like a credential (`SENSITIVE_KEY`) is redacted at any depth, and so are passwords
    and credential-named query parameters inside URL strings.
    """
    if isinstance(value, str):
        return _redact_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if (key in secret_keys or (isinstance(key, str) and SENSITIVE_KEY.search(key)))
            and not _is_placeholder(item)
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def redact_trigger(trigger: Mapping[str, Any]) -> dict[str, Any]:
    """A run's trigger as it may be shown: its headers passed through `redact`."""
    return {**trigger, "headers": redact(trigger.get("headers") or {})}
