"""`GET /internal/hooks/{token_hash}`: ingest's fallback when the Redis mirror misses.

Service-to-service only: not in the OpenAPI schema, never routed by the Ingress, and guarded by
the shared `X-Internal-Token` besides.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, status
from redis.exceptions import RedisError

from services.workflows.deps import InternalTokenDep, MirrorDep, SessionDep
from services.workflows.hooks.service import hook_record
from services.workflows.workflows.repository import WorkflowRepository

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@router.get("/internal/hooks/{token_hash}")
async def hook_by_token_hash(
    token_hash: str,
    session: SessionDep,
    mirror: MirrorDep,
    internal_token: InternalTokenDep,
    x_internal_token: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The routing record of the workflow whose webhook token hashes to `token_hash`.

    Also writes it back to Redis (version-guarded, and never for a revoked token), so one
    miss repairs the mirror for every ingest replica.
    """
    expected = internal_token.encode()
    if x_internal_token is None or not hmac.compare_digest(x_internal_token.encode(), expected):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid internal token")
    workflow = None
    if _SHA256_HEX.match(token_hash):
        workflow = await WorkflowRepository(session).by_token_hash(token_hash)
    if workflow is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "unknown webhook token")
    record = hook_record(workflow)
    try:
        await mirror.publish(token_hash, record)
    except RedisError as exc:
        # Ingest has its answer either way; the next miss tries the repair again.
        log.warning(
            "could not repair routing record in Redis",
            extra={"workflow_id": record["workflow_id"], "error": type(exc).__name__},
        )
    return dict(record)
