"""The async engine and the session scope.

Engines are built by each process at start-up (app lifespan, worker boot), never at import, so a
forked or re-exec'd process never inherits a connection pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import Settings

# A healthy server acknowledges a close in milliseconds.
_CLOSE_TIMEOUT_S = 0.25


class PromptlyClosed(asyncpg.Connection):  # type: ignore[misc]
    """A connection whose close waits at most a quarter of a second.

    SQLAlchemy closes a connection it invalidates (after a query timed out) "gracefully" with a
    fixed 2 s timeout: against a frozen server that doubled the time to answer 503. Pass it as
    `connect_args={"connection_class": PromptlyClosed}`.
    """

    async def close(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109 - asyncpg's
        limit = _CLOSE_TIMEOUT_S if timeout is None else min(timeout, _CLOSE_TIMEOUT_S)
        await super().close(timeout=limit)


def create_engine(settings: Settings) -> AsyncEngine:
    """An asyncpg-backed engine for the API services, sized by `AUTOMATEOS_DB_POOL_SIZE`.

    Every wait is bounded: connecting and waiting for a pooled connection by
    `AUTOMATEOS_DB_CONNECT_TIMEOUT_SECONDS`, each round trip (including the pool's pre-ping) by
    `AUTOMATEOS_DB_QUERY_TIMEOUT_SECONDS` on the client, since a frozen server enforces no
    statement timeout of its own.
    """
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        pool_timeout=settings.db_connect_timeout_seconds,
        connect_args={
            "timeout": settings.db_connect_timeout_seconds,
            "command_timeout": settings.db_query_timeout_seconds,
            "connection_class": PromptlyClosed,
            # A server-side statement timeout keeps a stuck query from holding a connection.
            "server_settings": {"statement_timeout": "30000"},
        },
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (responses read them)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block ends cleanly, rolls back when it raises.

    The request or job boundary owns the commit; repositories and helpers never commit.
    """
    async with factory() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
