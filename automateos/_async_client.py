"""The asynchronous client: the same methods as `Client`, awaited."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from automateos import _calls
from automateos._base import DEFAULT_TIMEOUT_S, ClientBase
from automateos._calls import Call, Id
from automateos._config import TokenStore
from automateos._errors import AuthenticationError, NotFoundError, WaitTimeout
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


class AsyncClient(ClientBase):
    """The AutomateOS API for asyncio; one `httpx.AsyncClient` for all calls.

    ```python
    async with AsyncClient() as client:
        await client.login("ada@example.com", "correct horse battery")
        accepted = await client.run_workflow(workflow_id, {"x": 1})
        run = await client.wait_for_run(accepted.run_id)
    ```
    """

    def __init__(
        self,
        *,
        auth_url: str | None = None,
        api_url: str | None = None,
        ingest_url: str | None = None,
        tokens: Tokens | None = None,
        token_store: TokenStore | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            auth_url=auth_url,
            api_url=api_url,
            ingest_url=ingest_url,
            tokens=tokens,
            token_store=token_store,
        )
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._refreshing = asyncio.Lock()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    # Sending

    async def _send(self, call: Call[Any], tokens: Tokens | None) -> httpx.Response:
        request = self._request(self._http, call, tokens)
        try:
            return await self._http.send(request)
        except httpx.TransportError as exc:
            raise self._unreachable(call, str(request.url.copy_with(query=None)), exc) from exc

    async def call(self, call: Call[T]) -> T:
        """Send one call; refresh the access token when it expired (or was refused) and retry."""
        tokens = self._tokens_for(call)
        if tokens is not None and tokens.expired():
            tokens = await self._refreshed(tokens)
        response = await self._send(call, tokens)
        if response.status_code == 401 and tokens is not None:
            response = await self._send(call, await self._refreshed(tokens))
        return self._result(call, response)

    async def _refreshed(self, stale: Tokens) -> Tokens:
        async with self._refreshing:
            step = self._refresh_call(stale)
            if isinstance(step, Tokens):
                return step
            try:
                tokens = await self.call(step)
            except AuthenticationError as exc:
                raise self._expired_session(exc) from exc
            self.token_store.save(tokens)
            return tokens

    async def ready(self) -> dict[str, bool]:
        """Whether each service (auth, workflows, ingest) answers `/readyz` with 200."""
        answers: dict[str, bool] = {}
        for service, base in self.endpoints.services().items():
            try:
                response = await self._http.get(base.rstrip("/") + "/readyz")
            except httpx.TransportError:
                answers[service] = False
            else:
                answers[service] = response.status_code == 200
        return answers

    # Auth

    async def login(self, email: str, password: str) -> Tokens:
        tokens = await self.call(_calls.login(email, password))
        self.token_store.save(tokens)
        return tokens

    async def register(self, email: str, password: str) -> User:
        return await self.call(_calls.register(email, password))

    async def me(self) -> User:
        return await self.call(_calls.me())

    async def logout(self) -> bool:
        """Revoke the refresh token (and its family) and forget the tokens. False when the auth
        service has no logout endpoint: the tokens are forgotten here but stay valid until they
        expire."""
        tokens = self.token_store.load()
        try:
            if tokens is None:
                return False
            await self.call(_calls.logout(tokens.refresh_token))
            return True
        except NotFoundError:
            return False
        finally:
            self.token_store.clear()

    # Workflows

    async def list_workflows(self, *, limit: int = 50, cursor: str | None = None) -> Page[Workflow]:
        return await self.call(_calls.list_workflows(limit, cursor))

    def iter_workflows(self) -> AsyncIterator[Workflow]:
        """Every workflow of the user, newest first, page by page."""
        return _pages(lambda cursor: self.list_workflows(limit=100, cursor=cursor))

    async def get_workflow(self, workflow_id: Id) -> Workflow:
        return await self.call(_calls.get_workflow(workflow_id))

    async def create_workflow(
        self, definition: Mapping[str, Any], *, dry_run: bool = False
    ) -> Workflow:
        """Create a workflow; `dry_run=True` checks it as a save would and stores nothing."""
        return await self.call(_calls.create_workflow(definition, dry_run))

    async def replace_workflow(
        self, workflow_id: Id, definition: Mapping[str, Any], *, dry_run: bool = False
    ) -> Workflow:
        """Replace the whole definition (a new version if anything changed)."""
        return await self.call(_calls.replace_workflow(workflow_id, definition, dry_run))

    async def update_workflow(self, workflow_id: Id, **changes: Any) -> Workflow:
        """Change only the given fields, e.g. `await update_workflow(id, active=False)`."""
        return await self.call(_calls.update_workflow(workflow_id, changes))

    async def delete_workflow(self, workflow_id: Id) -> None:
        await self.call(_calls.delete_workflow(workflow_id))

    # Runs

    async def list_runs(
        self,
        *,
        status: str | None = None,
        workflow_id: Id | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RunSummary]:
        """The user's runs across all workflows, newest first."""
        return await self.call(
            _calls.list_runs(
                status=status,
                workflow_id=workflow_id,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )
        )

    def iter_runs(self, **filters: Any) -> AsyncIterator[RunSummary]:
        """Every run matching `list_runs`' filters, newest first, page by page."""
        return _pages(lambda cursor: self.list_runs(limit=100, cursor=cursor, **filters))

    async def get_run(self, run_id: Id) -> Run:
        return await self.call(_calls.get_run(run_id))

    async def run_workflow(self, workflow_id: Id, data: Any = None) -> RunAccepted:
        """Start a run now; `data` (any JSON value) becomes `trigger.body`."""
        return await self.call(_calls.run_workflow(workflow_id, data))

    async def retry_run(self, run_id: Id) -> RunAccepted:
        return await self.call(_calls.retry_run(run_id))

    async def cancel_run(self, run_id: Id) -> Run:
        return await self.call(_calls.cancel_run(run_id))

    async def wait_for_run(
        self,
        run_id: Id,
        *,
        timeout: float = 300.0,  # noqa: ASYNC109 - same signature as Client.wait_for_run
        poll_interval: float = 0.5,
        on_poll: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll until the run has ended; WaitTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            run = await self.get_run(run_id)
            if on_poll is not None:
                on_poll(run)
            if run.ended:
                return run
            if time.monotonic() + poll_interval > deadline:
                raise WaitTimeout(f"run {run_id} still {run.status} after {timeout:g}s")
            await asyncio.sleep(poll_interval)

    # Credentials

    async def list_credentials(self) -> list[Credential]:
        return await self.call(_calls.list_credentials())

    async def set_credential(self, name: str, type: str, data: Mapping[str, str]) -> Credential:
        """Create the credential, or replace its type and values if the name exists."""
        try:
            return await self.call(_calls.replace_credential(name, type, data))
        except NotFoundError:
            return await self.call(_calls.create_credential(name, type, data))

    async def delete_credential(self, name: str) -> None:
        await self.call(_calls.delete_credential(name))


async def _pages(fetch: Callable[[str | None], Awaitable[Page[T]]]) -> AsyncIterator[T]:
    cursor: str | None = None
    while True:
        page = await fetch(cursor)
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor
