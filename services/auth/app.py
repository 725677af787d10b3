"""The auth service: accounts, tokens and the public keys that verify them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from services.auth.clients import LoginClients
from services.auth.issuer import TokenIssuer
from services.auth.keys import KeyRing
from services.auth.ratelimit import LoginThrottle
from services.auth.users.endpoints import router
from services.auth.users.passwords import HashingBusy, PasswordHasher
from shared.db.engine import create_engine, session_factory
from shared.db.errors import answer_outages_with_503
from shared.readiness import database_check, redis_check
from shared.service import ReadinessCheck, build_app
from shared.settings import get_settings
from shared.tokens import TokenVerifier

# The largest auth body is a 4 KiB refresh token or a 1 KiB password: 64 KiB is generous.
AUTH_MAX_BODY_BYTES = 64 * 1024
# Every wait on Redis (the login throttle) is bounded and never retried, so a stalled Redis is
# a 503 with Retry-After within about 2 s, as in ingest and workflows, never a hung login.
REDIS_CONNECT_TIMEOUT_S = 1.0
REDIS_TIMEOUT_S = 1.5
REDIS_RETRY_AFTER_S = 2


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    engine = create_engine(settings)
    redis_client = aioredis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    keys = KeyRing(settings.keys_dir, generate_if_empty=settings.env == "local")
    app.state.engine = engine
    app.state.sessions = session_factory(engine)
    app.state.redis = redis_client
    app.state.keys = keys
    app.state.issuer = TokenIssuer(keys, settings)
    app.state.verifier = TokenVerifier(keys, settings.jwt_issuer, settings.jwt_audience)
    app.state.login_clients = LoginClients(settings.resolved_internal_token())
    app.state.throttle = LoginThrottle(
        redis_client,
        settings.login_max_failures,
        settings.login_max_failures_per_client,
        settings.login_lockout_seconds,
    )
    app.state.hasher = PasswordHasher(
        settings.password_hash_concurrency, settings.password_hash_queue_seconds
    )
    try:
        yield
    finally:
        await redis_client.aclose()
        await engine.dispose()


def _readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    return {"database": database_check(app.state.engine), "redis": redis_check(app.state.redis)}


async def _hashing_busy(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HashingBusy)
    return JSONResponse(
        {"detail": str(exc)},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # The throttle could not count the attempt: refusing is safer than an uncounted guess.
    return JSONResponse(
        {"detail": "the login store (Redis) is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(REDIS_RETRY_AFTER_S)},
    )


def create_app() -> FastAPI:
    app = build_app(
        service="auth",
        title="AutomateOS auth",
        lifespan=lifespan,
        readiness=_readiness,
        max_body_bytes=AUTH_MAX_BODY_BYTES,
    )
    app.add_exception_handler(HashingBusy, _hashing_busy)
    app.add_exception_handler(RedisError, _redis_unavailable)
    app.include_router(router)
    answer_outages_with_503(app)
    return app
