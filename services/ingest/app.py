"""The ingest service: `/hooks/{token}` plus the shared health, readiness and metrics routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI

from services.ingest.hooks import callbacks
from services.ingest.hooks.admission import OverloadGauge, TokenBuckets
from services.ingest.hooks.debounce import Debouncer
from services.ingest.hooks.endpoints import IngestApp, document
from services.ingest.hooks.resolver import HookResolver, InternalHookSource
from services.ingest.hooks.service import Admission, WebhookService
from services.ingest.hooks.store import RunStore
from services.ingest.leanredis import LeanRedis
from shared.queue import RunEnqueuer, queue_key
from shared.service import ReadinessCheck, build_app
from shared.settings import get_settings
from shared.telemetry import configure_tracing, flush_tracing

# Every wait on Redis is bounded, so a dead or frozen Redis is a quick 503, never a hang: one
# deadline per operation covers waiting for a pooled connection, connecting and the round trip.
REDIS_DEADLINE_S = 2.0
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_MAX_CONNECTIONS = 64
# The token fallback is a rare path (Redis lost a record); it must not hold requests long.
WORKFLOWS_TIMEOUT = httpx.Timeout(1.5, connect=0.5)
# At shutdown: time to export the spans still batched (within the pod's grace period).
TRACE_FLUSH_S = 5.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_tracing("ingest")
    settings = get_settings()
    redis = LeanRedis(
        settings.redis_url,
        max_connections=REDIS_MAX_CONNECTIONS,
        deadline_s=REDIS_DEADLINE_S,
        connect_timeout_s=REDIS_CONNECT_TIMEOUT_S,
    )
    # RQ builds a template job from this at start-up; the client itself never connects.
    enqueuer = RunEnqueuer(
        aioredis.Redis.from_url(settings.redis_url),
        settings.queue_name,
        settings.job_timeout_seconds,
        prerender=True,
    )
    workflows = httpx.AsyncClient(
        base_url=settings.workflows_url,
        timeout=WORKFLOWS_TIMEOUT,
        limits=httpx.Limits(max_connections=16),
    )
    resolver = HookResolver(
        redis,
        InternalHookSource(workflows, settings.resolved_internal_token()).fetch,
        settings.hook_cache_seconds,
        keyring=settings.keyring(),
    )
    store = RunStore(redis, enqueuer, settings.dedupe_ttl_seconds)
    gauge = OverloadGauge(
        redis,
        queue_key(settings.queue_name),
        max_backlog=settings.ingest_max_backlog,
        max_memory_ratio=settings.ingest_max_memory_ratio,
        interval_s=settings.ingest_overload_check_seconds,
    )
    admission = Admission(
        gauge, TokenBuckets(), settings.ingest_rate_per_s, settings.ingest_rate_burst
    )
    app.state.redis = redis
    app.state.webhooks = WebhookService(
        resolver, store, settings.max_body_bytes, admission, Debouncer(redis, enqueuer)
    )
    reader = asyncio.create_task(gauge.run_forever())
    try:
        yield
    finally:
        reader.cancel()
        await workflows.aclose()
        await enqueuer.client.aclose()
        await redis.aclose()
        # Blocks the loop, but only at shutdown, once every request has been answered.
        flush_tracing(TRACE_FLUSH_S)


def _readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    async def redis() -> None:
        await app.state.redis.ping()

    return {"redis": redis}


def create_app() -> IngestApp:
    """The ingest ASGI app (uvicorn factory); the FastAPI app is its `.api`."""
    api = build_app(
        service="ingest",
        title="AutomateOS ingest",
        lifespan=lifespan,
        readiness=_readiness,
        # The FastAPI side takes resume callbacks; webhooks bypass it with their own limit.
        max_body_bytes=callbacks.MAX_CALLBACK_BYTES,
    )
    api.include_router(callbacks.router)
    document(api)
    return IngestApp(api, service="ingest")
