"""Credential rules, independent of HTTP: sealing, write-only data, who refers to what.

The plaintext exists here only while a request that sets it is handled: it is sealed before
it reaches the session, and nothing here ever opens a sealed value (only the worker does,
when a node needs it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.credentials.repository import CredentialRepository
from services.workflows.credentials.schemas import (
    CredentialData,
    CredentialIn,
    CredentialOut,
    CredentialReplace,
)
from shared.credentials import (
    CREDENTIAL_PARAM,
    HEADER_TYPES,
    is_name,
    references,
    secret_use_issues,
)
from shared.crypto import Keyring, credential_context
from shared.db.models import Credential, utcnow
from shared.nodes import is_template


class CredentialNotFound(Exception):
    """No such credential for this caller (absent or someone else's)."""


class CredentialConflict(Exception):
    """The change would break a rule (`message` says which): a 409."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def present(credential: Credential) -> CredentialOut:
    """The public view: which fields are set, never their values."""
    return CredentialOut(
        name=credential.name,
        type=credential.type,
        fields_set=list(credential.fields),
        allowed_hosts=credential.allowed_hosts,
        created_at=credential.created_at,
        updated_at=credential.updated_at,
    )


def _seal(keyring: Keyring, credential_id: uuid.UUID, body: CredentialData) -> str:
    return keyring.seal(orjson.dumps(body.data), credential_context(str(credential_id)))


async def create(
    session: AsyncSession, keyring: Keyring, owner_id: uuid.UUID, body: CredentialIn
) -> Credential:
    """Store a new credential, its data sealed; a taken name is a conflict."""
    repo = CredentialRepository(session)
    if await repo.named(owner_id, body.name) is not None:
        raise CredentialConflict(f"a credential named {body.name!r} already exists")
    now = utcnow()
    credential_id = uuid.uuid4()
    credential = Credential(
        id=credential_id,
        owner_id=owner_id,
        name=body.name,
        type=body.type,
        fields=sorted(body.data),
        data=_seal(keyring, credential_id, body),
        allowed_hosts=body.allowed_hosts,
        created_at=now,
        updated_at=now,
    )
    await repo.add(credential)
    return credential


async def get(session: AsyncSession, owner_id: uuid.UUID, name: str) -> Credential:
    credential = await CredentialRepository(session).named(owner_id, name)
    if credential is None:
        raise CredentialNotFound(name)
    return credential


async def _users(session: AsyncSession, owner_id: uuid.UUID, name: str) -> list[str]:
    rows = await CredentialRepository(session).workflow_nodes(owner_id)
    return sorted(
        workflow
        for workflow, nodes in rows
        if any(
            name in references(node.get("params")).names for node in nodes if isinstance(node, dict)
        )
    )


async def replace(
    session: AsyncSession,
    keyring: Keyring,
    owner_id: uuid.UUID,
    name: str,
    body: CredentialReplace,
) -> Credential:
    """New type and data under the same name (a rotated token, a new password)."""
    if body.name is not None and body.name != name:
        raise CredentialConflict("a credential cannot be renamed; create a new one instead")
    repo = CredentialRepository(session)
    credential = await repo.named(owner_id, name, for_update=True)
    if credential is None:
        raise CredentialNotFound(name)
    if body.type != credential.type:
        users = await _users(session, owner_id, name)
        if users:
            raise CredentialConflict(
                f"credential {name!r} is used by workflows {users}; its type cannot change"
            )
    credential.type = body.type
    credential.fields = sorted(body.data)
    credential.data = _seal(keyring, credential.id, body)
    credential.allowed_hosts = body.allowed_hosts
    credential.updated_at = utcnow()
    await session.flush()
    return credential


async def delete(session: AsyncSession, owner_id: uuid.UUID, name: str) -> None:
    """Delete a credential no workflow refers to (else a conflict naming them)."""
    repo = CredentialRepository(session)
    credential = await repo.named(owner_id, name, for_update=True)
    if credential is None:
        raise CredentialNotFound(name)
    users = await _users(session, owner_id, name)
    if users:
        raise CredentialConflict(f"credential {name!r} is used by workflows {users}")
    await repo.delete(credential)


def _issue(node_id: Any, field: str, message: str) -> dict[str, Any]:
    return {
        "loc": ["body", "nodes", node_id, "params", *field.split(".")],
        "msg": message,
        "type": "value_error",
    }


async def reference_issues(
    session: AsyncSession, owner_id: uuid.UUID, nodes: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """422 details for every credential the nodes name that the owner lacks or cannot use."""
    wanted: list[tuple[Any, str, str, bool]] = []  # (node id, field, name, as header)
    issues: list[dict[str, Any]] = []
    for node in nodes:
        params = node.get("params")
        refs = references(params)
        node_id = node.get("id")
        if refs.credential is not None:
            if is_template(refs.credential) or not is_name(refs.credential):
                issues.append(
                    _issue(node_id, CREDENTIAL_PARAM, "must be a credential name, not a template")
                )
            else:
                wanted.append((node_id, CREDENTIAL_PARAM, refs.credential, True))
        wanted.extend((node_id, "", name, False) for name in sorted(refs.secrets))
        if refs.secrets:
            node_type = node.get("type")
            for field, message in secret_use_issues(
                node_type if isinstance(node_type, str) else "", params
            ):
                issues.append(_issue(node_id, field, message))
    types = await CredentialRepository(session).types(owner_id, {w[2] for w in wanted})
    for node_id, field, name, as_header in wanted:
        found = types.get(name)
        where = field or "secrets"
        if found is None:
            issues.append(_issue(node_id, where, f"no credential named {name!r}"))
        elif as_header and found not in HEADER_TYPES:
            issues.append(
                _issue(
                    node_id,
                    where,
                    f"credential {name!r} is a {found} credential; "
                    f"use {{{{ secrets.{name} }}}} in a template instead",
                )
            )
        elif not as_header and found != "secret":
            issues.append(
                _issue(
                    node_id,
                    where,
                    f"secrets.{name} reads a secret credential, but {name!r} is a {found} "
                    "credential; name it in params.credential instead",
                )
            )
    return issues
