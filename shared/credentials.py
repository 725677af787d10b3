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

from jinja2 import Environment, TemplateSyntaxError
from jinja2 import nodes as jinja_nodes

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
# Parses (never renders) templates to see how they read `secrets`.
_PARSER = Environment(autoescape=False)  # noqa: S701 - nothing is rendered, so nothing escaped
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


# Where a template may read `secrets`: the parts of an `http_request` that are sent, and only
# there. Anywhere else (a log message, a transform, a condition, a switch) the value, or any
# transformation of it (reversed, upper-cased, sliced, compared), would end in a run record
# that scrubbing cannot recognise it in. docs/credentials.md states the rule.
SENDING_NODE = "http_request"
SENDING_FIELDS = ("url", "headers", "query", "json", "body")
_SECRETS_NAME = "secrets"


def _bare_uses_only(source: str) -> bool:
    """Whether every read of `secrets` in `source` is a whole `{{ secrets.<name> }}` output.

    Bare means untransformed: no filter, operator, call, slice or test around it, and not in
    a `{% %}` statement. So the only forms of a value that can reach a request are the ones
    the engine itself makes when sending (and scrubs): the value, URL-encoded, JSON-escaped.
    """
    try:
        tree = _PARSER.parse(source)
    except TemplateSyntaxError:
        return True  # reported as a syntax error by the template check
    reads = [n for n in tree.find_all(jinja_nodes.Name) if n.name == _SECRETS_NAME]
    bare: set[int] = set()
    for output in tree.find_all(jinja_nodes.Output):
        for child in output.nodes:
            target = (
                child.node if isinstance(child, jinja_nodes.Getattr | jinja_nodes.Getitem) else None
            )
            named = isinstance(child, jinja_nodes.Getattr) or (
                isinstance(child, jinja_nodes.Getitem)
                and isinstance(child.arg, jinja_nodes.Const)
                and isinstance(child.arg.value, str)
            )
            if named and isinstance(target, jinja_nodes.Name) and target.name == _SECRETS_NAME:
                bare.add(id(target))
    return all(id(read) in bare for read in reads)


def _secret_leaves(value: Any, path: str, found: list[tuple[str, str]]) -> None:
    """(path, template) of every template string in `value` that reads `secrets`."""
    if isinstance(value, str):
        refs: set[str] = set()
        _template_secrets(value, refs)
        if refs:
            found.append((path, value))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _secret_leaves(item, f"{path}.{key}" if path else str(key), found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _secret_leaves(item, f"{path}.{index}" if path else str(index), found)


def secret_use_issues(node_type: str, params: Any) -> list[tuple[str, str]]:
    """(params field, message) for every read of `secrets` the rule above does not allow."""
    found: list[tuple[str, str]] = []
    if isinstance(params, Mapping):
        _secret_leaves(params, "", found)
    issues = []
    for path, source in found:
        field = path.split(".", 1)[0]
        if node_type != SENDING_NODE or field not in SENDING_FIELDS:
            issues.append(
                (
                    path,
                    "secrets can be used only where http_request sends them "
                    f"({', '.join(SENDING_FIELDS)}); nowhere else could their value be kept "
                    "out of run records",
                )
            )
        elif not _bare_uses_only(source):
            issues.append(
                (
                    path,
                    "use a secret as {{ secrets.<name> }} itself: no filter, operator, slice, "
                    "call or statement may transform it",
                )
            )
    return issues


def mask_secret_fields(params: Any) -> Any:
    """`params` with every template that reads `secrets` replaced whole by its placeholder(s):
    what the run record shows of those fields."""
    if isinstance(params, str):
        refs: set[str] = set()
        _template_secrets(params, refs)
        return ", ".join(placeholder(name) for name in sorted(refs)) if refs else params
    if isinstance(params, Mapping):
        return {key: mask_secret_fields(item) for key, item in params.items()}
    if isinstance(params, list):
        return [mask_secret_fields(item) for item in params]
    return params
