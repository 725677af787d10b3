"""The credentials API: a user's named secrets for nodes, data write-only."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from services.workflows.credentials import service
from services.workflows.credentials.repository import CredentialRepository
from services.workflows.credentials.schemas import (
    CredentialIn,
    CredentialList,
    CredentialOut,
    CredentialReplace,
)
from services.workflows.deps import KeyringDep, SessionDep
from shared.tokens import CurrentUserId

router = APIRouter(tags=["credentials"])


@router.post("/credentials", status_code=status.HTTP_201_CREATED, response_model=CredentialOut)
async def create_credential(
    user_id: CurrentUserId,
    body: CredentialIn,
    session: SessionDep,
    keyring: KeyringDep,
    response: Response,
) -> CredentialOut:
    """Store a credential; `data` is encrypted at once and never returned."""
    credential = await service.create(session, keyring, user_id, body)
    await session.commit()
    response.headers["Location"] = f"/credentials/{credential.name}"
    return service.present(credential)


@router.get("/credentials", response_model=CredentialList)
async def list_credentials(user_id: CurrentUserId, session: SessionDep) -> CredentialList:
    """The caller's credentials by name: type, which fields are set, timestamps."""
    rows = await CredentialRepository(session).all_of(user_id)
    return CredentialList(items=[service.present(row) for row in rows])


@router.get("/credentials/{name}", response_model=CredentialOut)
async def get_credential(user_id: CurrentUserId, name: str, session: SessionDep) -> CredentialOut:
    return service.present(await service.get(session, user_id, name))


@router.put("/credentials/{name}", response_model=CredentialOut)
async def replace_credential(
    user_id: CurrentUserId,
    name: str,
    body: CredentialReplace,
    session: SessionDep,
    keyring: KeyringDep,
) -> CredentialOut:
    """Replace the type and data (a rotated token); workflows naming it use the new value."""
    credential = await service.replace(session, keyring, user_id, name, body)
    await session.commit()
    return service.present(credential)


@router.delete("/credentials/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_credential(user_id: CurrentUserId, name: str, session: SessionDep) -> Response:
    """Delete a credential; 409 while a workflow still names it."""
    await service.delete(session, user_id, name)
    await session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
