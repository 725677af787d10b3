"""What a credential is and how a workflow refers to one (the workflows service and the worker).

A node refers to a credential in two ways: `params.credential: "<name>"` (a `bearer`, `basic`
or `header` credential applied as an HTTP header), and `{{ secrets.<name> }}` in any template
(a `secret` credential's value). Names are identifiers, so `secrets.<name>` always parses.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

CredentialType = Literal["bearer", "basic", "header", "secret"]
# The data fields each type takes, all required.
FIELDS: dict[str, tuple[str, ...]] = {
    "bearer": ("token",),
    "basic": ("username", "password"),
    "header": ("name", "value"),
    "secret": ("value",),
}
# Types `params.credential` accepts: the ones that become a request header.
HEADER_TYPES = frozenset({"bearer", "basic", "header"})
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
CREDENTIAL_PARAM = "credential"
_NAME = re.compile(NAME_PATTERN)
# `secrets.name` or `secrets['name']`; a computed key (`secrets[x]`) names nothing, and since
# only named credentials are ever loaded for a run, it can read nothing either.
_SECRET_REF = re.compile(
    r"\bsecrets\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\])"
)


def placeholder(name: str) -> str:
    """What run records show instead of a credential's value."""
    return f"[credential {name}]"


def is_name(value: object) -> bool:
    """Whether `value` is a valid credential name."""
    return isinstance(value, str) and bool(_NAME.match(value))


@dataclass
class References:
    """The credentials one node's params name: the header one and the template secrets."""

    credential: str | None = None
    secrets: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.credential is not None or bool(self.secrets)

    @property
    def names(self) -> set[str]:
        """Every name referred to."""
        return self.secrets | ({self.credential} if self.credential else set())


def _template_secrets(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        if "secrets" in value and ("{{" in value or "{%" in value):
            for dotted, quoted in _SECRET_REF.findall(value):
                found.add(dotted or quoted)
    elif isinstance(value, Mapping):
        for item in value.values():
            _template_secrets(item, found)
    elif isinstance(value, list):
        for item in value:
            _template_secrets(item, found)


def references(params: Any) -> References:
    """The credential names a node's params refer to (nothing for non-dict params)."""
    refs = References()
    if not isinstance(params, Mapping):
        return refs
    named = params.get(CREDENTIAL_PARAM)
    if isinstance(named, str):
        refs.credential = named
    _template_secrets(params, refs.secrets)
    return refs


def auth_header(type_: str, data: Mapping[str, str]) -> tuple[str, str]:
    """The HTTP header a `bearer`, `basic` or `header` credential becomes."""
    if type_ == "bearer":
        return "Authorization", f"Bearer {data['token']}"
    if type_ == "basic":
        pair = f"{data['username']}:{data['password']}".encode()
        return "Authorization", "Basic " + base64.b64encode(pair).decode()
    if type_ == "header":
        return data["name"], data["value"]
    raise ValueError(f"a {type_!r} credential is not an HTTP header")
