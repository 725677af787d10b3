"""Every API call as data (method, path, body, how to read the answer), shared by the sync
and async clients so each only has to send them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import httpx

from automateos._models import (
    Credential,
    Page,
    Run,
    RunAccepted,
    RunSummary,
    Tokens,
    User,
    Workflow,
)

T = TypeVar("T")
Service = Literal["auth", "api"]
Id = uuid.UUID | str


class _NoBody:
    pass


NO_BODY = _NoBody()


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    service: Service
    path: str
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str | int] = field(default_factory=dict)
    body: Any = NO_BODY
    authenticated: bool = True


def _model(kind: Callable[[Any], T]) -> Callable[[httpx.Response], T]:
    return lambda response: kind(response.json())


def _nothing(response: httpx.Response) -> None:
    return None


def _time(value: datetime) -> str:
    return value.isoformat()


def _params(**values: Any) -> dict[str, str | int]:
    out: dict[str, str | int] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, datetime):
            value = _time(value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[name] = value
    return out


# Auth


def login(email: str, password: str) -> Call[Tokens]:
    body = {"email": email, "password": password}
    return Call(
        "POST", "auth", "/auth/login", _model(Tokens.from_pair), body=body, authenticated=False
    )


def register(email: str, password: str) -> Call[User]:
    body = {"email": email, "password": password}
    return Call(
        "POST",
        "auth",
        "/auth/register",
        _model(User.model_validate),
        body=body,
        authenticated=False,
    )


def refresh(refresh_token: str) -> Call[Tokens]:
    body = {"refresh_token": refresh_token}
    return Call(
        "POST", "auth", "/auth/refresh", _model(Tokens.from_pair), body=body, authenticated=False
    )


def logout(refresh_token: str) -> Call[None]:
    body = {"refresh_token": refresh_token}
    return Call("POST", "auth", "/auth/logout", _nothing, body=body, authenticated=False)


def me() -> Call[User]:
    return Call("GET", "auth", "/auth/me", _model(User.model_validate))


# Workflows


def list_workflows(limit: int, cursor: str | None) -> Call[Page[Workflow]]:
    return Call(
        "GET",
        "api",
        "/workflows",
        _model(Page[Workflow].model_validate),
        params=_params(limit=limit, cursor=cursor),
    )


def get_workflow(workflow_id: Id) -> Call[Workflow]:
    return Call("GET", "api", f"/workflows/{workflow_id}", _model(Workflow.model_validate))


def create_workflow(definition: Mapping[str, Any], dry_run: bool) -> Call[Workflow]:
    return Call(
        "POST",
        "api",
        "/workflows",
        _model(Workflow.model_validate),
        params=_params(dry_run=dry_run or None),
        body=dict(definition),
    )


def replace_workflow(
    workflow_id: Id, definition: Mapping[str, Any], dry_run: bool
) -> Call[Workflow]:
    return Call(
        "PUT",
        "api",
        f"/workflows/{workflow_id}",
        _model(Workflow.model_validate),
        params=_params(dry_run=dry_run or None),
        body=dict(definition),
    )


def update_workflow(workflow_id: Id, changes: Mapping[str, Any]) -> Call[Workflow]:
    return Call(
        "PATCH",
        "api",
        f"/workflows/{workflow_id}",
        _model(Workflow.model_validate),
        body=dict(changes),
    )


def delete_workflow(workflow_id: Id) -> Call[None]:
    return Call("DELETE", "api", f"/workflows/{workflow_id}", _nothing)


def _input_fields(response: httpx.Response) -> frozenset[str] | None:
    schemas = response.json().get("components", {}).get("schemas", {})
    properties = schemas.get("WorkflowIn", {}).get("properties")
    return frozenset(properties) if isinstance(properties, dict) else None


def workflow_input_fields() -> Call[frozenset[str] | None]:
    """The fields a workflow definition takes, from the API's own OpenAPI (None if absent)."""
    return Call("GET", "api", "/openapi.json", _input_fields, authenticated=False)


# Runs


def list_runs(
    *,
    status: str | None,
    workflow_id: Id | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> Call[Page[RunSummary]]:
    params = _params(
        status=status,
        workflow_id=workflow_id,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "api", "/runs", _model(Page[RunSummary].model_validate), params=params)


def get_run(run_id: Id) -> Call[Run]:
    return Call("GET", "api", f"/runs/{run_id}", _model(Run.model_validate))


def run_workflow(workflow_id: Id, data: Any) -> Call[RunAccepted]:
    return Call(
        "POST",
        "api",
        f"/workflows/{workflow_id}/run",
        _model(RunAccepted.model_validate),
        body=data,
    )


def retry_run(run_id: Id) -> Call[RunAccepted]:
    return Call("POST", "api", f"/runs/{run_id}/retry", _model(RunAccepted.model_validate))


def cancel_run(run_id: Id) -> Call[Run]:
    return Call("POST", "api", f"/runs/{run_id}/cancel", _model(Run.model_validate))


# Credentials


def _credentials(response: httpx.Response) -> list[Credential]:
    return [Credential.model_validate(item) for item in response.json()["items"]]


def list_credentials() -> Call[list[Credential]]:
    return Call("GET", "api", "/credentials", _credentials)


def create_credential(name: str, type: str, data: Mapping[str, str]) -> Call[Credential]:
    body = {"name": name, "type": type, "data": dict(data)}
    return Call("POST", "api", "/credentials", _model(Credential.model_validate), body=body)


def replace_credential(name: str, type: str, data: Mapping[str, str]) -> Call[Credential]:
    body = {"type": type, "data": dict(data)}
    return Call("PUT", "api", f"/credentials/{name}", _model(Credential.model_validate), body=body)


def delete_credential(name: str) -> Call[None]:
    return Call("DELETE", "api", f"/credentials/{name}", _nothing)
