"""Credentials at the render step: the only place a credential's plaintext exists.

For a node that names credentials (`params.credential`, `{{ secrets.<name> }}`), the sealed rows
are read when the node is about to run and only the names it uses are opened. Secrets may
be read only where `http_request` sends them, untransformed (shared/credentials.py); a node that
breaks the rule fails before anything is opened. The params are rendered twice: once with the
real values (what the node gets) and once with every field that reads a secret replaced whole by
`[credential <name>]` (what the run record shows). Whatever the node returns or raises is
scrubbed of the values it was given (and of the encodings the engine gives them when sending)
before the engine sees it, and the engine scrubs every message of the step with the same values
(secret_scope.py), so they reach no record, later step, log line or span even when a server
echoes them back. The node's requests carry them only to the hosts and origin they are meant
for (shared/nodes/credential_binding.py). Nodes that name no credential cost nothing here.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.engine.fairness import FairRenderer
from shared.credentials import (
    HEADER_TYPES,
    auth_header,
    mask_secret_fields,
    placeholder,
    references,
    secret_use_issues,
)
from shared.crypto import DecryptionFailed, Keyring, credential_context
from shared.nodes import Halt, NodeContext, NodeDefinition, NodeError, NodeSpec
from shared.nodes.credential_binding import CredentialBinding, bound

# Values shorter than this are not scrubbed from outputs: replacing every "ab" in a response
# would mangle it, and a secret that short protects nothing anyway.
MIN_SCRUBBED_CHARS = 4

# The workflow's owner's credentials among `names`; one round trip, no plaintext leaves SQL.
_LOAD = text(
    """
    SELECT c.id, c.name, c.type, c.data, c.allowed_hosts
    FROM credentials AS c JOIN workflows AS w ON w.owner_id = c.owner_id
    WHERE w.id = :workflow_id AND c.name = ANY(:names)
    """
)


@dataclass(frozen=True)
class _Sealed:
    id: uuid.UUID
    type: str
    data: str
    allowed_hosts: tuple[str, ...] = ()


def _open(keyring: Keyring, name: str, sealed: _Sealed) -> dict[str, str]:
    try:
        data: dict[str, str] = orjson.loads(
            keyring.open(sealed.data, credential_context(str(sealed.id)))
        )
    except DecryptionFailed as exc:
        raise NodeError(f"credential {name!r} cannot be decrypted: {exc}") from None
    return data


def _scrub_text(text: str, name: str, secret: str) -> str:
    if secret in text:
        text = text.replace(secret, placeholder(name))
    # An excerpt cut in the middle of a value ("answered 401: ...Basic YWRhOn") keeps a piece
    # of it at its end (or, for a preview, at its start): those go too.
    for size in range(len(secret) - 1, MIN_SCRUBBED_CHARS - 1, -1):
        if text.endswith(secret[:size]):
            text = text[:-size] + placeholder(name)
            break
    for size in range(len(secret) - 1, MIN_SCRUBBED_CHARS - 1, -1):
        if text.startswith(secret[-size:]):
            text = placeholder(name) + text[size:]
            break
    return text


def scrub(value: Any, secrets: Mapping[str, str]) -> Any:
    """`value` with every secret value (name -> value) replaced by its placeholder."""
    if not secrets:
        return value
    if isinstance(value, str):
        for name, secret in secrets.items():
            if len(secret) >= MIN_SCRUBBED_CHARS:
                value = _scrub_text(value, name, secret)
        return value
    if isinstance(value, Mapping):
        return {scrub(key, secrets): scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item, secrets) for item in value]
    return value


def encoded_forms(name: str, value: str) -> dict[str, str]:
    """The value and the encodings the engine itself gives it when sending: URL-encoded (a
    path or query) and JSON-escaped (a body). A server quoting any of them back is scrubbed."""
    found = {name: value}
    for suffix, form in (
        ("url", quote(value, safe="")),
        ("form", quote_plus(value, safe="")),
        ("path", quote(value)),
        ("json", orjson.dumps(value).decode()[1:-1]),
    ):
        if form not in found.values():
            found[f"{name}.{suffix}"] = form
    return found


def _scrubbing(
    spec: NodeSpec[Any], secrets: Mapping[str, str], binding: CredentialBinding
) -> NodeSpec[Any]:
    """`spec` whose results and errors are scrubbed of `secrets`, and whose requests carry
    them only where they are meant to go (shared/nodes/credential_binding.py)."""

    async def run(ctx: NodeContext, params: Any) -> Any:
        try:
            with bound(binding):
                result = await spec.execute(ctx, params)
        except NodeError as exc:
            exc.message = scrub(exc.message, secrets)
            exc.args = (exc.message,)
            # Its cause (an httpx error quoting a URL) would reach a span's stack trace.
            exc.__cause__ = None
            exc.__suppress_context__ = True
            raise
        except Exception as exc:
            # Its traceback could quote the values: only the scrubbed message goes on.
            message = scrub(f"{type(exc).__name__}: {exc}", secrets)
            raise NodeError(message) from None
        if isinstance(result, Halt):
            return Halt(scrub(result.output, secrets), scrub(result.reason, secrets))
        return scrub(result, secrets)

    return dataclasses.replace(spec, run=run)


# Outside a run's CPU account it renders inline, as before (tests, tools).
_INLINE = FairRenderer()


@dataclass(frozen=True)
class RenderedParams:
    """A node's params rendered with its credentials, and what the engine must do about them."""

    params: Any  # what the node gets
    shown: Any  # what the run record shows: fields that read a secret replaced whole
    spec: NodeSpec[Any]  # the spec to execute (scrubbing and binding when credentials are used)
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict)  # to scrub: name -> form


class CredentialVault:
    """Renders a node's params with its owner's credentials (one per worker process)."""

    def __init__(self, db: AsyncEngine | None = None, keyring: Keyring | None = None) -> None:
        self.db = db
        self.keyring = keyring

    async def _load(self, workflow_id: str, names: set[str]) -> dict[str, _Sealed]:
        if self.db is None:
            raise NodeError("credentials are not available to this worker")
        async with self.db.connect() as conn:
            rows = await conn.execute(
                _LOAD, {"workflow_id": uuid.UUID(workflow_id), "names": sorted(names)}
            )
        return {
            row.name: _Sealed(row.id, row.type, row.data, tuple(row.allowed_hosts or ()))
            for row in rows
        }

    async def render(
        self,
        workflow_id: str,
        node: NodeDefinition,
        spec: NodeSpec[Any],
        context: Mapping[str, Any],
        renderer: FairRenderer | None = None,
    ) -> RenderedParams:
        """The params for the node and for the record, and the spec to execute.

        Raises NodeError (a failed step) for a missing, mistyped or undecryptable credential,
        a secret used where the rule forbids it, or a template error; its message never
        contains a credential's value.
        """
        renderer = renderer or _INLINE
        refs = references(node.params)
        if not refs:
            rendered = await renderer.render(node.params, context)
            return RenderedParams(rendered, rendered, spec)
        # Workflows saved before the rule (docs/credentials.md) are held to it here.
        misused = secret_use_issues(node.type, node.params) if refs.secrets else []
        if misused:
            field, message = misused[0]
            raise NodeError(f"params.{field}: {message}")
        sealed = await self._load(workflow_id, refs.names)
        assert self.keyring is not None  # a vault with a database has its keys
        for name in sorted(refs.names):
            if name not in sealed:
                raise NodeError(
                    f"credential {name!r} not found (deleted after the workflow was saved?)"
                )
        wanted = {name: sealed[name] for name in refs.secrets}
        for name, row in wanted.items():
            if row.type != "secret":
                raise NodeError(
                    f"secrets.{name} reads a secret credential; {name!r} is a {row.type}"
                )
        # Opened before rendering, as a plain mapping: the render may run in a render process
        # (fairness.py), and these are exactly the values the templates read (the rule allows
        # only bare `{{ secrets.<name> }}`), so every one of them is scrubbed afterwards.
        secrets = {name: _open(self.keyring, name, row)["value"] for name, row in wanted.items()}
        shown = await renderer.render(mask_secret_fields(node.params), context)
        try:
            rendered = await renderer.render(node.params, {**context, "secrets": secrets})
        except NodeError as exc:
            raise NodeError(scrub(exc.message, secrets)) from None
        used: dict[str, str] = {}
        for name, value in secrets.items():
            used.update(encoded_forms(name, value))
        header_templates = node.params.get("headers")
        headers = (
            {
                key.lower()
                for key, template in (header_templates or {}).items()
                if isinstance(key, str) and references({"h": template}).secrets
            }
            if isinstance(header_templates, Mapping)
            else set()
        )
        body = any(references({"b": node.params.get(f)}).secrets for f in ("json", "body"))
        if refs.credential is not None:
            name = refs.credential
            row = sealed[name]
            if row.type not in HEADER_TYPES:
                raise NodeError(f"credential {name!r} is a {row.type}; use secrets.{name}")
            data = _open(self.keyring, name, row)
            header, value = auth_header(row.type, data)
            # The credential wins over a header of the same name, whatever its case.
            rendered_headers = {
                key: item
                for key, item in (rendered.get("headers") or {}).items()
                if not (isinstance(key, str) and key.lower() == header.lower())
            }
            rendered_headers[header] = value
            rendered = {**rendered, "headers": rendered_headers}
            shown = {**shown, "credential": placeholder(name)}
            headers.add(header.lower())
            used.update(encoded_forms(name, value))
            # The parts too: a server may quote only the token, or the Basic blob.
            used.update(encoded_forms(f"{name}.scheme_value", value.split(" ", 1)[-1]))
            for field in ("token", "password", "value"):
                if field in data:
                    used.update(encoded_forms(f"{name}.{field}", data[field]))
        binding = CredentialBinding(
            headers=frozenset(headers),
            body=body,
            allowed_hosts={
                n: sealed[n].allowed_hosts for n in refs.names if sealed[n].allowed_hosts
            },
        )
        return RenderedParams(rendered, scrub(shown, used), _scrubbing(spec, used, binding), used)
