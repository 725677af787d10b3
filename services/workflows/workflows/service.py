"""Workflow rules, independent of HTTP: validation, versions, webhook tokens, write-only secrets.

Functions here change the session but never commit: the endpoint commits, then publishes the
routing record (see services/workflows/hooks/service.py for why some changes invalidate it
before the commit).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.workflows.credentials import service as credentials
from services.workflows.hooks.service import HookMirror
from services.workflows.workflows import quotas
from services.workflows.workflows.flow_schemas import stored_flow
from services.workflows.workflows.links import canonical, link_issues
from services.workflows.workflows.repository import WorkflowRepository
from services.workflows.workflows.schemas import (
    DEFAULT_HMAC_HEADER,
    RateLimitIn,
    RetentionIn,
    ScheduleTriggerOut,
    SignatureOut,
    TriggerIn,
    TriggerOut,
    VersionOut,
    VersionPage,
    WorkflowIn,
    WorkflowOut,
    WorkflowPatch,
)
from shared import schedules
from shared.crypto import Keyring, hook_secret_context, is_sealed
from shared.db.models import Workflow, utcnow
from shared.flow import FLOW_FIELDS
from shared.hooks import derive_token, token_hash
from shared.nodes import NodeRegistry, issues_to_detail, validate_nodes
from shared.settings import get_settings


class WorkflowNotFound(Exception):
    """No such workflow for this caller (absent or someone else's: the caller cannot tell)."""


class InvalidDefinition(Exception):
    """The definition breaks a rule the schema cannot express; `detail` is FastAPI-shaped."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("invalid workflow definition")
        self.detail = detail


class WebhookUrls:
    """Derives webhook tokens and URLs; holds the key so it is read once per process."""

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._base = public_url.rstrip("/") + "/hooks/"

    def token(self, workflow_id: uuid.UUID, nonce: str) -> str:
        return derive_token(self._key, str(workflow_id), nonce)

    def url(self, workflow: Workflow) -> str:
        """The webhook URL, re-derived on every read: only the token's hash is stored."""
        return self._base + self.token(workflow.id, workflow.webhook_nonce)

    def new_token(self, workflow_id: uuid.UUID) -> tuple[str, str]:
        """A fresh random nonce and the hash of the token it derives: `(nonce, hash)`."""
        nonce = secrets.token_urlsafe(32)
        return nonce, token_hash(self.token(workflow_id, nonce))


def present(workflow: Workflow, urls: WebhookUrls) -> WorkflowOut:
    """The public view of a workflow: the secret is reduced to `secret_set`."""
    trigger = workflow.trigger
    stored = trigger.get("signature")
    signature = (
        SignatureOut(scheme=stored["scheme"], header=stored.get("header")) if stored else None
    )
    return WorkflowOut(
        id=workflow.id,
        name=workflow.name,
        description=workflow.description,
        active=workflow.active,
        version=workflow.version,
        nodes=workflow.nodes,
        trigger=ScheduleTriggerOut.model_validate(trigger)
        if schedules.is_schedule(trigger)
        else TriggerOut(signature=signature),
        retention=RetentionIn.model_validate(workflow.retention or {}),
        on_error=workflow.on_error,
        rate_limit=RateLimitIn.model_validate(workflow.rate_limit) if workflow.rate_limit else None,
        **(workflow.flow or {}),
        webhook_url=urls.url(workflow),
        next_run_at=workflow.next_run_at,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
    )


async def _checked_nodes(
    session: AsyncSession, registry: NodeRegistry, owner_id: uuid.UUID, nodes: list[Any]
) -> list[dict[str, Any]]:
    issues = validate_nodes(nodes, registry)
    if issues:
        raise InvalidDefinition(issues_to_detail(issues))
    # validate_nodes has made sure every entry is an object.
    checked = [dict(node) for node in nodes]
    missing = await credentials.reference_issues(session, owner_id, checked)
    if missing:
        raise InvalidDefinition(missing)
    return checked


async def _checked_links(
    session: AsyncSession, owner_id: uuid.UUID, nodes: list[dict[str, Any]], on_error: str | None
) -> str | None:
    """The stored `on_error`, once it and every `call_workflow` name one of the owner's."""
    issues = await link_issues(session, owner_id, nodes, on_error)
    if issues:
        raise InvalidDefinition(issues)
    return None if on_error is None else canonical(on_error)


def _next_run_at(workflow: Workflow) -> datetime | None:
    if not workflow.active or not schedules.is_schedule(workflow.trigger):
        return None
    trigger = workflow.trigger
    try:
        if trigger.get("cron"):
            # A trigger stored before never-firing expressions were refused at save.
            schedules.check_cron(trigger["cron"], trigger.get("timezone") or "UTC")
        return schedules.next_tick(trigger, utcnow())
    except ValueError as exc:
        field = "cron" if trigger.get("cron") else "every"
        raise InvalidDefinition(
            [{"loc": ["body", "trigger", field], "msg": str(exc), "type": "value_error"}]
        ) from None


async def _check_quotas(
    session: AsyncSession, workflow_id: uuid.UUID, owner_id: uuid.UUID, trigger: Any, active: bool
) -> None:
    limits = quotas.ScheduleQuotas.from_settings(get_settings())
    try:
        await quotas.check(session, limits, owner_id, workflow_id, trigger, active)
    except quotas.QuotaExceeded as exc:
        raise InvalidDefinition(exc.detail) from None


def _requested_flow(body: WorkflowIn | WorkflowPatch, names: Sequence[str]) -> dict[str, Any]:
    return stored_flow({name: getattr(body, name) for name in names})


def _stored_retention(requested: RetentionIn | None) -> dict[str, Any]:
    return requested.model_dump(exclude_defaults=True) if requested else {}


def _stored_rate_limit(requested: RateLimitIn | None) -> dict[str, Any] | None:
    return requested.model_dump() if requested else None


def _stored_trigger(
    requested: TriggerIn | None,
    current: dict[str, Any] | None,
    keyring: Keyring,
    workflow_id: uuid.UUID,
) -> dict[str, Any]:
    """The trigger to store, its secret sealed. A signature without `secret` keeps the stored
    one, if any, for the same scheme (the API never shows secrets, so clients cannot send
    them back)."""
    if requested is not None and requested.type == "schedule":
        return requested.model_dump(exclude_none=True, exclude={"signature"})
    if requested is None or requested.signature is None:
        return {"type": "webhook", "signature": None}
    wanted = requested.signature
    context = hook_secret_context(str(workflow_id))
    secret = keyring.seal(wanted.secret.encode(), context) if wanted.secret else None
    if secret is None:
        previous = (current or {}).get("signature")
        if not previous or previous.get("scheme") != wanted.scheme:
            raise InvalidDefinition(
                [
                    {
                        "loc": ["body", "trigger", "signature", "secret"],
                        "msg": "a secret is required when setting a new signature scheme",
                        "type": "missing",
                    }
                ]
            )
        secret = previous["secret"]
        if not is_sealed(secret):  # stored before secrets were encrypted
            secret = keyring.seal(secret.encode(), context)
    signature: dict[str, Any] = {"scheme": wanted.scheme, "secret": secret}
    if wanted.scheme == "hmac-sha256":
        signature["header"] = wanted.header or DEFAULT_HMAC_HEADER
    return {"type": "webhook", "signature": signature}


async def create(
    session: AsyncSession,
    registry: NodeRegistry,
    urls: WebhookUrls,
    keyring: Keyring,
    owner_id: uuid.UUID,
    body: WorkflowIn,
) -> Workflow:
    """Create version 1 of a workflow with a fresh webhook token."""
    nodes = await _checked_nodes(session, registry, owner_id, body.nodes)
    on_error = await _checked_links(session, owner_id, nodes, body.on_error)
    now = utcnow()
    workflow_id = uuid.uuid4()
    nonce, hashed = urls.new_token(workflow_id)
    workflow = Workflow(
        id=workflow_id,
        owner_id=owner_id,
        name=body.name,
        description=body.description,
        active=body.active,
        version=1,
        nodes=nodes,
        trigger=_stored_trigger(body.trigger, None, keyring, workflow_id),
        retention=_stored_retention(body.retention),
        on_error=on_error,
        rate_limit=_stored_rate_limit(body.rate_limit),
        flow=_requested_flow(body, FLOW_FIELDS),
        webhook_token_hash=hashed,
        webhook_nonce=nonce,
        created_at=now,
        updated_at=now,
    )
    workflow.next_run_at = _next_run_at(workflow)
    await _check_quotas(session, workflow_id, owner_id, workflow.trigger, workflow.active)
    repo = WorkflowRepository(session)
    await repo.add(workflow)
    await repo.add_version(workflow)
    return workflow


async def get(session: AsyncSession, owner_id: uuid.UUID, workflow_id: uuid.UUID) -> Workflow:
    workflow = await WorkflowRepository(session).owned(workflow_id, owner_id)
    if workflow is None:
        raise WorkflowNotFound(workflow_id)
    return workflow


async def versions(
    session: AsyncSession,
    owner_id: uuid.UUID,
    workflow_id: uuid.UUID,
    limit: int,
    before: int | None,
) -> VersionPage:
    """The owner's workflow's versions, newest first; WorkflowNotFound for anyone else."""
    await get(session, owner_id, workflow_id)
    # One extra row tells whether an older page exists without a COUNT.
    rows = await WorkflowRepository(session).versions(workflow_id, limit + 1, before)
    items = [
        VersionOut(version=row.version, nodes=row.nodes, created_at=row.created_at)
        for row in rows[:limit]
    ]
    return VersionPage(items=items, next_before=items[-1].version if len(rows) > limit else None)


async def _locked(session: AsyncSession, owner_id: uuid.UUID, workflow_id: uuid.UUID) -> Workflow:
    workflow = await WorkflowRepository(session).owned(workflow_id, owner_id, for_update=True)
    if workflow is None:
        raise WorkflowNotFound(workflow_id)
    return workflow


async def _apply(
    session: AsyncSession, mirror: HookMirror, workflow: Workflow, changes: dict[str, Any]
) -> Workflow:
    """Apply changed fields as a new version; a request that changes nothing is no version."""
    changed = {name: value for name, value in changes.items() if getattr(workflow, name) != value}
    if not changed:
        return workflow
    if "trigger" in changed or "active" in changed:
        await _check_quotas(
            session,
            workflow.id,
            workflow.owner_id,
            changed.get("trigger", workflow.trigger),
            changed.get("active", workflow.active),
        )
    for name, value in changed.items():
        setattr(workflow, name, value)
    workflow.version += 1
    workflow.updated_at = utcnow()
    if "trigger" in changed or "active" in changed:
        # Deactivating clears it in this transaction: the scheduler's claim on the row
        # (SELECT ... FOR UPDATE) sees the change the moment it commits.
        workflow.next_run_at = _next_run_at(workflow)
    repo = WorkflowRepository(session)
    await repo.add_version(workflow)
    # Before the commit, so ingest never acts on the old record once the change is confirmed
    # (raises, and so rolls the change back, when Redis is unreachable).
    await mirror.invalidate(workflow.webhook_token_hash)
    return workflow


async def replace(
    session: AsyncSession,
    registry: NodeRegistry,
    mirror: HookMirror,
    keyring: Keyring,
    owner_id: uuid.UUID,
    workflow_id: uuid.UUID,
    body: WorkflowIn,
) -> Workflow:
    """PUT: the body is the whole definition; omitted optional fields return to defaults."""
    workflow = await _locked(session, owner_id, workflow_id)
    nodes = await _checked_nodes(session, registry, owner_id, body.nodes)
    changes = {
        "name": body.name,
        "description": body.description,
        "active": body.active,
        "nodes": nodes,
        "trigger": _stored_trigger(body.trigger, workflow.trigger, keyring, workflow.id),
        "retention": _stored_retention(body.retention),
        "on_error": await _checked_links(session, owner_id, nodes, body.on_error),
        "rate_limit": _stored_rate_limit(body.rate_limit),
        "flow": _requested_flow(body, FLOW_FIELDS),
    }
    return await _apply(session, mirror, workflow, changes)


async def patch(
    session: AsyncSession,
    registry: NodeRegistry,
    mirror: HookMirror,
    keyring: Keyring,
    owner_id: uuid.UUID,
    workflow_id: uuid.UUID,
    body: WorkflowPatch,
) -> Workflow:
    """PATCH: change only the fields present in the body."""
    workflow = await _locked(session, owner_id, workflow_id)
    present_fields = body.model_fields_set
    changes: dict[str, Any] = {
        name: getattr(body, name)
        for name in ("name", "description", "active")
        if name in present_fields
    }
    if "nodes" in present_fields and body.nodes is not None:
        changes["nodes"] = await _checked_nodes(session, registry, owner_id, body.nodes)
    if "trigger" in present_fields:
        changes["trigger"] = _stored_trigger(body.trigger, workflow.trigger, keyring, workflow.id)
    if "retention" in present_fields:
        changes["retention"] = _stored_retention(body.retention)
    if "nodes" in changes or "on_error" in present_fields:
        on_error = await _checked_links(session, owner_id, changes.get("nodes", []), body.on_error)
        if "on_error" in present_fields:
            changes["on_error"] = on_error
    if "rate_limit" in present_fields:
        changes["rate_limit"] = _stored_rate_limit(body.rate_limit)
    flow_fields = [name for name in FLOW_FIELDS if name in present_fields]
    if flow_fields:
        kept = {k: v for k, v in (workflow.flow or {}).items() if k not in flow_fields}
        changes["flow"] = {**kept, **_requested_flow(body, flow_fields)}
    return await _apply(session, mirror, workflow, changes)


async def rotate(
    session: AsyncSession,
    mirror: HookMirror,
    urls: WebhookUrls,
    owner_id: uuid.UUID,
    workflow_id: uuid.UUID,
) -> Workflow:
    """Replace the webhook token; the old URL stops working. Not a new version: the
    definition (what a run executes) is unchanged."""
    workflow = await _locked(session, owner_id, workflow_id)
    old_hash = workflow.webhook_token_hash
    workflow.webhook_nonce, workflow.webhook_token_hash = urls.new_token(workflow.id)
    workflow.updated_at = utcnow()
    await session.flush()
    await mirror.revoke(old_hash)
    return workflow


async def delete(
    session: AsyncSession, mirror: HookMirror, owner_id: uuid.UUID, workflow_id: uuid.UUID
) -> None:
    """Delete the workflow with its versions and runs, and revoke its webhook URL."""
    workflow = await _locked(session, owner_id, workflow_id)
    await WorkflowRepository(session).delete(workflow)
    await mirror.revoke(workflow.webhook_token_hash)
