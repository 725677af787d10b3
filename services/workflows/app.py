"""The workflows service: workflow definitions, webhook URLs, the node catalogue and run history."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.types import Scope

from services.workflows.activity.endpoints import router as activity_router
from services.workflows.catalogue.endpoints import router as catalogue_router
from services.workflows.console.endpoints import router as console_router
from services.workflows.console.endpoints import session_router as console_session_router
from services.workflows.console.endpoints import static_files as console_static_files
from services.workflows.console.session import AuthClient
from services.workflows.credentials.endpoints import router as credentials_router
from services.workflows.credentials.service import CredentialConflict, CredentialNotFound
from services.workflows.hooks.endpoints import router as hooks_router
from services.workflows.hooks.service import HookMirror, mirror_all_at_startup
from services.workflows.runs.endpoints import router as runs_router
from services.workflows.runs.service import RunNotFound
from services.workflows.workflows.endpoints import router as workflows_router
from services.workflows.workflows.service import InvalidDefinition, WebhookUrls, WorkflowNotFound
from shared.body_limit import BodyLimit
from shared.db.engine import create_engine, session_factory
from shared.db.errors import answer_outages_with_503
from shared.nodes import load_registry
from shared.queue import RunEnqueuer
from shared.readiness import database_check, redis_check
from shared.service import ReadinessCheck, build_app
from shared.settings import get_settings
from shared.telemetry import configure_tracing, flush_tracing
from shared.tokens import JwksCache, TokenVerifier

# At shutdown: time to export the spans still batched (within the pod's grace period).
TRACE_FLUSH_S = 5.0


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    configure_tracing("workflows")
    settings = get_settings()
    engine = create_engine(settings)
    sessions = session_factory(engine)
    # Bounded timeouts: a hung Redis must fail a request (503), not hold it forever.
    redis_client = aioredis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=2, socket_timeout=5
    )
    http = httpx.AsyncClient()
    mirror = HookMirror(redis_client)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.redis = redis_client
    app.state.verifier = TokenVerifier(
        JwksCache(settings.auth_url.rstrip("/") + "/.well-known/jwks.json", http),
        settings.jwt_issuer,
        settings.jwt_audience,
    )
    app.state.console_auth = AuthClient(http, settings.auth_url, settings.resolved_internal_token())
    app.state.registry = load_registry()
    app.state.urls = WebhookUrls(settings.resolved_webhook_key(), settings.public_url)
    app.state.internal_token = settings.resolved_internal_token()
    app.state.keyring = settings.keyring()
    app.state.mirror = mirror
    app.state.enqueuer = RunEnqueuer(
        redis_client, settings.queue_name, settings.job_timeout_seconds
    )
    mirroring = asyncio.create_task(mirror_all_at_startup(sessions, mirror))
    try:
        yield
    finally:
        mirroring.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await mirroring
        await http.aclose()
        await redis_client.aclose()
        await engine.dispose()
        flush_tracing(TRACE_FLUSH_S)


def _readiness(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    return {"database": database_check(app.state.engine), "redis": redis_check(app.state.redis)}


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    what = {RunNotFound: "run", CredentialNotFound: "credential"}.get(type(exc), "workflow")
    return JSONResponse({"detail": f"{what} not found"}, status_code=404)


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CredentialConflict)
    return JSONResponse({"detail": exc.message}, status_code=409)


async def _invalid_definition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidDefinition)
    return JSONResponse({"detail": exc.detail}, status_code=422)


async def _redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Raised before any commit (the session rolls back): nothing was changed.
    return JSONResponse(
        {"detail": "the queue/routing store (Redis) is unavailable; nothing was changed"},
        status_code=503,
    )


def _body_limit(api_limit: int, run_limit: int) -> BodyLimit:
    # A manual run's body is a trigger body, allowed as much as a webhook's; everything else
    # (definitions, credentials) is far smaller.
    def limit(scope: Scope) -> int:
        manual_run = scope["method"] == "POST" and scope["path"].endswith("/run")
        return run_limit if manual_run else api_limit

    return limit


def create_app() -> FastAPI:
    settings = get_settings()
    app = build_app(
        service="workflows",
        title="AutomateOS workflows",
        lifespan=lifespan,
        readiness=_readiness,
        max_body_bytes=_body_limit(settings.api_max_body_bytes, settings.max_body_bytes),
    )
    app.add_exception_handler(WorkflowNotFound, _not_found)
    app.add_exception_handler(RunNotFound, _not_found)
    app.add_exception_handler(CredentialNotFound, _not_found)
    app.add_exception_handler(CredentialConflict, _conflict)
    app.add_exception_handler(InvalidDefinition, _invalid_definition)
    app.add_exception_handler(RedisError, _redis_unavailable)
    answer_outages_with_503(app)
    # Before the workflows router: /workflows/{workflow_id} would take "activity" as an id.
    app.include_router(activity_router)
    app.include_router(workflows_router)
    app.include_router(runs_router)
    app.include_router(catalogue_router)
    app.include_router(hooks_router)
    app.include_router(console_router)
    app.include_router(console_session_router)
    app.mount("/console/static", console_static_files(), name="console-static")
    app.include_router(credentials_router)
    return app
