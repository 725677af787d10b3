"""The async engine and the session scope.

Engines are built by each process at start-up (app lifespan, worker boot), never at import, so a
forked or re-exec'd process never inherits a connection pool.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.settings import Settings


def create_engine(settings: Settings) -> AsyncEngine:
    """An asyncpg-backed engine sized by `AUTOMATEOS_DB_POOL_SIZE`."""
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,
        # A server-side statement timeout keeps a stuck query from holding a request forever.
        connect_args={"server_settings": {"statement_timeout": "30000"}},
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
