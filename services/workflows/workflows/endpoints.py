"""The workflow API: CRUD and webhook rotation.

Writes commit here, before answering, and only then publish the routing record: FastAPI closes
the session dependency after the response is sent, too late to report a failed commit.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.workflows.cursors import InvalidCursor, decode_cursor, encode_cursor, invalid_cursor
from services.workflows.deps import (
    KeyringDep,
    MirrorDep,
    RegistryDep,
    SessionDep,
    UrlsDep,
    WorkflowId,
)
from services.workflows.workflows import service
from services.workflows.workflows.repository import WorkflowRepository
from services.workflows.workflows.schemas import (
    VersionPage,
    WorkflowIn,
    WorkflowOut,
    WorkflowPage,
    WorkflowPatch,
)
from shared.tokens import CurrentUserId

router = APIRouter(tags=["workflows"])

# `apply` and editors check a whole definition the way a save would, without saving it.
DryRun = Annotated[
    bool, Query(description="validate and answer as a save would, but store nothing")
]


def _after(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if cursor is None:
        return None
    try:
        created_at, workflow_id = decode_cursor(cursor, 2)
        return datetime.fromisoformat(created_at), uuid.UUID(workflow_id)
    except (InvalidCursor, TypeError, ValueError):
        raise invalid_cursor() from None


@router.get("/workflows", response_model=WorkflowPage)
async def list_workflows(
    user_id: CurrentUserId,
    session: SessionDep,
    urls: UrlsDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> WorkflowPage:
    """The caller's workflows, newest first; pass `next_cursor` back as `cursor` for more."""
    after = _after(cursor)
    # One extra row tells whether another page exists without a COUNT.
    rows = await WorkflowRepository(session).page(user_id, limit + 1, after)
    items = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor([last.created_at.isoformat(), str(last.id)])
    return WorkflowPage(
        items=[service.present(workflow, urls) for workflow in items], next_cursor=next_cursor
    )


@router.post("/workflows", status_code=status.HTTP_201_CREATED, response_model=WorkflowOut)
async def create_workflow(
    user_id: CurrentUserId,
    body: WorkflowIn,
    session: SessionDep,
    registry: RegistryDep,
    mirror: MirrorDep,
    urls: UrlsDep,
    keyring: KeyringDep,
    response: Response,
    dry_run: DryRun = False,
) -> WorkflowOut:
    """Create version 1. With `dry_run=true`: every check of a real save, nothing stored,
    200 with the workflow that would be created (its id is not kept)."""
    workflow = await service.create(session, registry, urls, keyring, user_id, body)
    if dry_run:
        would_be = service.present(workflow, urls)
        await session.rollback()
        response.status_code = status.HTTP_200_OK
        return would_be
    await session.commit()
    await mirror.publish_after_commit(workflow)
    response.headers["Location"] = f"/workflows/{workflow.id}"
    return service.present(workflow, urls)


@router.get("/workflows/{workflow_id}", response_model=WorkflowOut)
async def get_workflow(
    user_id: CurrentUserId, workflow_id: WorkflowId, session: SessionDep, urls: UrlsDep
) -> WorkflowOut:
    return service.present(await service.get(session, user_id, workflow_id), urls)


@router.get("/workflows/{workflow_id}/versions", response_model=VersionPage)
async def list_versions(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> VersionPage:
    """The workflow's versions (its nodes at each change), newest first; pass `next_before`
    back as `before` for older ones."""
    return await service.versions(session, user_id, workflow_id, limit, before)


@router.put("/workflows/{workflow_id}", response_model=WorkflowOut)
async def replace_workflow(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    body: WorkflowIn,
    session: SessionDep,
    registry: RegistryDep,
    mirror: MirrorDep,
    urls: UrlsDep,
    keyring: KeyringDep,
    dry_run: DryRun = False,
) -> WorkflowOut:
    """Replace the whole definition; every change is a new version. With `dry_run=true`:
    every check of a real save, nothing stored, the workflow as it would be (`version` goes
    up only if something would change)."""
    workflow = await service.replace(session, registry, mirror, keyring, user_id, workflow_id, body)
    if dry_run:
        would_be = service.present(workflow, urls)
        await session.rollback()
        # A real change drops the routing record before its commit; put the unchanged one back
        # rather than leave ingest to repair it.
        await mirror.publish_after_commit(await service.get(session, user_id, workflow_id))
        return would_be
    await session.commit()
    await mirror.publish_after_commit(workflow)
    return service.present(workflow, urls)


@router.patch("/workflows/{workflow_id}", response_model=WorkflowOut)
async def patch_workflow(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    body: WorkflowPatch,
    session: SessionDep,
    registry: RegistryDep,
    mirror: MirrorDep,
    urls: UrlsDep,
    keyring: KeyringDep,
) -> WorkflowOut:
    """Change the fields present in the body; every change is a new version."""
    workflow = await service.patch(session, registry, mirror, keyring, user_id, workflow_id, body)
    await session.commit()
    await mirror.publish_after_commit(workflow)
    return service.present(workflow, urls)


@router.delete("/workflows/{workflow_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_workflow(
    user_id: CurrentUserId, workflow_id: WorkflowId, session: SessionDep, mirror: MirrorDep
) -> Response:
    """Delete the workflow, its versions and its run history; its webhook URL stops working."""
    await service.delete(session, mirror, user_id, workflow_id)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/workflows/{workflow_id}/webhook/rotate", response_model=WorkflowOut)
async def rotate_webhook(
    user_id: CurrentUserId,
    workflow_id: WorkflowId,
    session: SessionDep,
    mirror: MirrorDep,
    urls: UrlsDep,
) -> WorkflowOut:
    """Issue a new webhook URL; the old one stops working. The version does not change."""
    workflow = await service.rotate(session, mirror, urls, user_id, workflow_id)
    await session.commit()
    await mirror.publish_after_commit(workflow)
    return service.present(workflow, urls)
