"""Dependency aliases of the auth service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.issuer import TokenIssuer
from services.auth.ratelimit import LoginThrottle
from shared.db.engine import session_scope


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    async with session_scope(request.app.state.sessions) as session:
        yield session


def _issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.issuer
    return issuer


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.throttle
    return throttle


# scope="function": commit before the response is sent, so a client that gets its 201 can
# read what it created on the very next request.
SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
IssuerDep = Annotated[TokenIssuer, Depends(_issuer)]
ThrottleDep = Annotated[LoginThrottle, Depends(_throttle)]
