"""Every query of the auth service. Never commits: the request boundary does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from shared.db.models import RefreshToken, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(col(User.email) == email))
        return result.scalar_one_or_none()

    async def by_id(self, user_id: uuid.UUID) -> User | None:
        return await self.session.get(User, user_id)

    async def add(self, user: User) -> None:
        self.session.add(user)
        await self.session.flush()

    async def add_refresh_token(
        self, jti: uuid.UUID, user_id: uuid.UUID, expires_at: int, family_id: uuid.UUID
    ) -> None:
        self.session.add(
            RefreshToken(
                jti=jti,
                user_id=user_id,
                family_id=family_id,
                expires_at=datetime.fromtimestamp(expires_at, UTC),
            )
        )
        await self.session.flush()

    async def refresh_token(self, jti: uuid.UUID) -> RefreshToken | None:
        return await self.session.get(RefreshToken, jti)

    async def revoke_family(self, family_id: uuid.UUID) -> None:
        """Revoke every unrevoked token rotated from the same login."""
        await self.session.execute(
            update(RefreshToken)
            .where(
                or_(col(RefreshToken.family_id) == family_id, col(RefreshToken.jti) == family_id),
                col(RefreshToken.revoked_at).is_(None),
            )
            .values(revoked_at=datetime.now(UTC))
        )

    async def revoke_refresh_token(self, jti: uuid.UUID) -> RefreshToken | None:
        """Revoke an unrevoked token and return it; None when unknown or already revoked."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(col(RefreshToken.jti) == jti, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=datetime.now(UTC))
            .returning(RefreshToken)
        )
        return result.scalar_one_or_none()

    async def revoke_all_refresh_tokens(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            update(RefreshToken)
            .where(col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
