"""The request's database session as a FastAPI dependency, for services that own a database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.engine import session_scope


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One unit of work per request, from the factory the app's lifespan put on app.state."""
    async with session_scope(request.app.state.sessions) as session:
        yield session


# scope="function": commit before the response is sent, so a client that gets its 201 can
# read what it created on the very next request.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
