"""Every credential query. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.db.models import Credential, Workflow


class CredentialRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def named(
        self, owner_id: uuid.UUID, name: str, *, for_update: bool = False
    ) -> Credential | None:
        """The owner's credential of that name; None for anyone else's."""
        query = select(Credential).where(
            col(Credential.owner_id) == owner_id, col(Credential.name) == name
        )
        if for_update:
            query = query.with_for_update()
        return (await self.session.execute(query)).scalar_one_or_none()

    async def all_of(self, owner_id: uuid.UUID) -> Sequence[Credential]:
        query = (
            select(Credential)
            .where(col(Credential.owner_id) == owner_id)
            .order_by(col(Credential.name))
        )
        return (await self.session.execute(query)).scalars().all()

    async def types(self, owner_id: uuid.UUID, names: Collection[str]) -> dict[str, str]:
        """name -> type of the owner's credentials among `names` (no data is read)."""
        if not names:
            return {}
        query = select(col(Credential.name), col(Credential.type)).where(
            col(Credential.owner_id) == owner_id, col(Credential.name).in_(list(names))
        )
        return {name: type_ for name, type_ in (await self.session.execute(query)).all()}

    async def workflow_nodes(self, owner_id: uuid.UUID) -> Sequence[tuple[str, list[Any]]]:
        """(name, nodes) of every workflow of the owner: who refers to what."""
        query = select(col(Workflow.name), col(Workflow.nodes)).where(
            col(Workflow.owner_id) == owner_id
        )
        return [(name, nodes) for name, nodes in (await self.session.execute(query)).all()]

    async def add(self, credential: Credential) -> None:
        self.session.add(credential)
        await self.session.flush()

    async def delete(self, credential: Credential) -> None:
        await self.session.execute(delete(Credential).where(col(Credential.id) == credential.id))
