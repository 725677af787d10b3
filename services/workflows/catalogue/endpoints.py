"""`GET /nodes`: the node types this deployment knows, with the JSON Schema of their params."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.workflows.deps import RegistryDep
from shared.tokens import CurrentUserId

router = APIRouter(tags=["nodes"])


@router.get("/nodes")
async def list_nodes(_user_id: CurrentUserId, registry: RegistryDep) -> dict[str, Any]:
    """Every node type: `{type, version, description, params_schema, settings_schema}`."""
    return {"items": registry.catalogue()}
