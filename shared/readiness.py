"""Readiness checks for services that hold a database engine and a Redis client.

Kept apart from shared/service.py so a service without a database (ingest) never imports
SQLAlchemy.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.service import ReadinessCheck


def database_check(engine: AsyncEngine) -> ReadinessCheck:
    """A readiness check that PostgreSQL answers a trivial query on `engine`."""

    async def check() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    return check


def redis_check(client: aioredis.Redis) -> ReadinessCheck:
    """A readiness check that Redis answers PING."""

    async def check() -> None:
        await client.ping()

    return check
