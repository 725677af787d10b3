"""Credentials at the render step: the only place a credential's plaintext exists.

For a node that names credentials (`params.credential`, `{{ secrets.<name> }}`), the sealed rows
are read when the node is about to run and opened only as the templates read them. The params
are rendered twice: once with the real values (what the node gets) and once with
`[credential <name>]` in their place (what the run record shows). Whatever the node returns or
raises is scrubbed of the values it was given before the engine sees it, so they reach no
record, later step, log line or span even when a server echoes them back. Nodes that name no
credential cost nothing here.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.worker.engine.fairness import FairRenderer
from shared.credentials import HEADER_TYPES, auth_header, placeholder, references
from shared.crypto import DecryptionFailed, Keyring, credential_context
from shared.nodes import Halt, NodeContext, NodeDefinition, NodeError, NodeSpec

# Values shorter than this are not scrubbed from outputs: replacing every "ab" in a response
# would mangle it, and a secret that short protects nothing anyway.
MIN_SCRUBBED_CHARS = 4

# The workflow's owner's credentials among `names`; one round trip, no plaintext leaves SQL.
_LOAD = text(
    """
    SELECT c.id, c.name, c.type, c.data
    FROM credentials AS c JOIN workflows AS w ON w.owner_id = c.owner_id
    WHERE w.id = :workflow_id AND c.name = ANY(:names)
    """
)


@dataclass(frozen=True)
class _Sealed:
    id: uuid.UUID
    type: str
    data: str


class _Secrets(Mapping[str, str]):
    """`secrets` in the templates: a value is decrypted when a template reads it."""

    def __init__(self, keyring: Keyring, sealed: Mapping[str, _Sealed]) -> None:
        self._keyring = keyring
        self._sealed = sealed
        self.opened: dict[str, str] = {}

    def __getitem__(self, name: str) -> str:
        if name not in self.opened:
            self.opened[name] = _open(self._keyring, name, self._sealed[name])["value"]
        return self.opened[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._sealed)

    def __len__(self) -> int:
        return len(self._sealed)

    def __repr__(self) -> str:
        return "[secrets]"

    __str__ = __repr__


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


# The values the current step was given: a task-local, so concurrent runs never mix them.
_STEP_SECRETS: ContextVar[Mapping[str, str] | None] = ContextVar(
    "automateos_step_secrets", default=None
)


class _ScrubLogs(logging.Filter):
    """Scrubs what a node logs through `ctx.logger` while it holds credential values."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _STEP_SECRETS.get()
        if secrets:
            record.msg = scrub(record.getMessage(), secrets)
            record.args = None
        return True


_SCRUB_LOGS = _ScrubLogs()


def _scrubbing(spec: NodeSpec[Any], secrets: Mapping[str, str]) -> NodeSpec[Any]:
    """`spec` whose results, errors and log lines are scrubbed of `secrets`."""

    async def run(ctx: NodeContext, params: Any) -> Any:
        if _SCRUB_LOGS not in ctx.logger.filters:
            ctx.logger.addFilter(_SCRUB_LOGS)
        token = _STEP_SECRETS.set(secrets)
        try:
            result = await spec.execute(ctx, params)
        except NodeError as exc:
            exc.message = scrub(exc.message, secrets)
            exc.args = (exc.message,)
            raise
        except Exception as exc:
            # Its traceback could quote the values: only the scrubbed message goes on.
            message = scrub(f"{type(exc).__name__}: {exc}", secrets)
            raise NodeError(message) from None
        finally:
            _STEP_SECRETS.reset(token)
        if isinstance(result, Halt):
            return Halt(scrub(result.output, secrets), scrub(result.reason, secrets))
        return scrub(result, secrets)

    return dataclasses.replace(spec, run=run)


# Outside a run's CPU account it renders inline, as before (tests, tools).
_INLINE = FairRenderer()


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
        return {row.name: _Sealed(row.id, row.type, row.data) for row in rows}

    async def render(
        self,
        workflow_id: str,
        node: NodeDefinition,
        spec: NodeSpec[Any],
        context: Mapping[str, Any],
        renderer: FairRenderer | None = None,
    ) -> tuple[Any, Any, NodeSpec[Any]]:
        """(params for the node, params for the record, the spec to execute).

        Raises NodeError (a failed step) for a missing, mistyped or undecryptable credential
        or a template error; its message never contains a credential's value.
        """
        renderer = renderer or _INLINE
        refs = references(node.params)
        if not refs:
            rendered = await renderer.render(node.params, context)
            return rendered, rendered, spec
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
        secrets = _Secrets(self.keyring, wanted)
        shown = await renderer.render(
            node.params, {**context, "secrets": {n: placeholder(n) for n in wanted}}
        )
        try:
            rendered = await renderer.render(node.params, {**context, "secrets": secrets})
        except NodeError as exc:
            raise NodeError(scrub(exc.message, secrets.opened)) from None
        used = dict(secrets.opened)
        if refs.credential is not None:
            name = refs.credential
            row = sealed[name]
            if row.type not in HEADER_TYPES:
                raise NodeError(f"credential {name!r} is a {row.type}; use secrets.{name}")
            data = _open(self.keyring, name, row)
            header, value = auth_header(row.type, data)
            # The credential wins over a header of the same name, whatever its case.
            headers = {
                key: item
                for key, item in (rendered.get("headers") or {}).items()
                if not (isinstance(key, str) and key.lower() == header.lower())
            }
            headers[header] = value
            rendered = {**rendered, "headers": headers}
            shown = {**shown, "credential": placeholder(name)}
            used[name] = value
            # The parts too: a server may quote only the token, or the Basic blob.
            used[f"{name}.scheme_value"] = value.split(" ", 1)[-1]
            for field in ("token", "password", "value"):
                if field in data:
                    used[f"{name}.{field}"] = data[field]
        return rendered, scrub(shown, used), _scrubbing(spec, used)
