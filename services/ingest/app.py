"""The ingest service: `/hooks/{token}` plus the shared health, readiness and metrics routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from services.ingest.hooks.endpoints import HookRoute, document
from services.ingest.hooks.resolver import HookResolver, InternalHookSource
from services.ingest.hooks.service import RunStore, WebhookService
from shared.queue import RunEnqueuer
from shared.service import ReadinessCheck, build_app
from shared.settings import get_settings

# Every wait on Redis is bounded, so a dead or frozen Redis is a quick 503, never a hang:
# connect 1 s, each reply 2 s, a free pooled connection 2 s. redis-py's default (10 retries with
# backoff) could hold a request for most of a minute.
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_SOCKET_TIMEOUT_S = 2.0
REDIS_POOL_WAIT_S = 2.0
REDIS_MAX_CONNECTIONS = 64
# The token fallback is a rare path (Redis lost a record); it must not hold requests long.
WORKFLOWS_TIMEOUT = httpx.Timeout(1.5, connect=0.5)


def connect_redis(url: str) -> aioredis.Redis:
    """An async Redis client whose every wait is bounded.

    One retry, and only on a connection error: it covers a pooled connection that Redis closed
    while idle. A timeout is not retried: the MULTI may have been applied, and a blind retry
    would enqueue the job twice.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_MAX_CONNECTIONS,
        timeout=REDIS_POOL_WAIT_S,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis(connection_pool=pool)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    redis_client = connect_redis(settings.redis_url)
    workflows = httpx.AsyncClient(
        base_url=settings.workflows_url,
        timeout=WORKFLOWS_TIMEOUT,
        limits=httpx.Limits(max_connections=16),
    )
    resolver = HookResolver(
        redis_client,
        InternalHookSource(workflows, settings.resolved_internal_token()).fetch,
        settings.hook_cache_seconds,
    )
    enqueuer = RunEnqueuer(redis_client, settings.queue_name, settings.job_timeout_seconds)
    store = RunStore(redis_client, enqueuer, settings.dedupe_ttl_seconds)
    app.state.redis = redis_client
    app.state.webhooks = WebhookService(resolver, store, settings.max_body_bytes)
    try:
        yield
    finally:
        await workflows.aclose()
        await redis_client.aclose(close_connection_pool=True)


def _readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    async def redis() -> None:
        await app.state.redis.ping()

    return {"redis": redis}


def create_app() -> FastAPI:
    """The ingest ASGI app (uvicorn factory)."""
    app = build_app(
        service="ingest", title="AutomateOS ingest", lifespan=lifespan, readiness=_readiness
    )
    app.router.routes.append(HookRoute())
    document(app)
    return app
