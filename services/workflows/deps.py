"""Dependency aliases of the workflows service (everything is built once in the lifespan)."""

from __future__ import annotations

import uuid
from typing import Annotated

import redis.asyncio as aioredis
from fastapi import Depends, HTTPException, Request, status

from services.workflows.hooks.service import HookMirror
from services.workflows.workflows.service import WebhookUrls
from shared.crypto import Keyring
from shared.db.deps import SessionDep as SessionDep  # re-exported: every alias lives here
from shared.nodes import NodeRegistry
from shared.queue import RunEnqueuer
from shared.settings import Settings


def _registry(request: Request) -> NodeRegistry:
    registry: NodeRegistry = request.app.state.registry
    return registry


def _mirror(request: Request) -> HookMirror:
    mirror: HookMirror = request.app.state.mirror
    return mirror


def _urls(request: Request) -> WebhookUrls:
    urls: WebhookUrls = request.app.state.urls
    return urls


def _redis(request: Request) -> aioredis.Redis:
    client: aioredis.Redis = request.app.state.redis
    return client


def _enqueuer(request: Request) -> RunEnqueuer:
    enqueuer: RunEnqueuer = request.app.state.enqueuer
    return enqueuer


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _keyring(request: Request) -> Keyring:
    keyring: Keyring = request.app.state.keyring
    return keyring


def _internal_token(request: Request) -> str:
    token: str = request.app.state.internal_token
    return token


def _uuid_or_404(value: str, what: str) -> uuid.UUID:
    # A malformed id names nothing that exists: the same 404 as an unknown one, not a 422
    # that would tell ids apart by shape.
    try:
        return uuid.UUID(value)
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{what} not found") from None


def _workflow_id(workflow_id: str) -> uuid.UUID:
    return _uuid_or_404(workflow_id, "workflow")


def _run_id(run_id: str) -> uuid.UUID:
    return _uuid_or_404(run_id, "run")


RegistryDep = Annotated[NodeRegistry, Depends(_registry)]
MirrorDep = Annotated[HookMirror, Depends(_mirror)]
UrlsDep = Annotated[WebhookUrls, Depends(_urls)]
RedisDep = Annotated[aioredis.Redis, Depends(_redis)]
EnqueuerDep = Annotated[RunEnqueuer, Depends(_enqueuer)]
SettingsDep = Annotated[Settings, Depends(_settings)]
KeyringDep = Annotated[Keyring, Depends(_keyring)]
InternalTokenDep = Annotated[str, Depends(_internal_token)]
WorkflowId = Annotated[uuid.UUID, Depends(_workflow_id)]
RunId = Annotated[uuid.UUID, Depends(_run_id)]
