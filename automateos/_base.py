"""What the sync and async clients share: configuration, building requests, reading answers."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import httpx

from automateos import _calls
from automateos._calls import NO_BODY, Call
from automateos._config import Endpoints, MemoryTokenStore, TokenStore
from automateos._errors import AuthenticationError, NotLoggedIn, TransportError, error_for
from automateos._models import Tokens

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0
USER_AGENT = "automateos-python"


class ClientBase:
    def __init__(
        self,
        *,
        auth_url: str | None,
        api_url: str | None,
        ingest_url: str | None,
        tokens: Tokens | None,
        token_store: TokenStore | None,
    ) -> None:
        self.endpoints = Endpoints.from_env(auth_url, api_url, ingest_url)
        self.token_store: TokenStore = token_store or MemoryTokenStore()
        if tokens is not None:
            self.token_store.save(tokens)

    @property
    def tokens(self) -> Tokens | None:
        return self.token_store.load()

    def _url(self, call: Call[Any]) -> str:
        base = self.endpoints.auth_url if call.service == "auth" else self.endpoints.api_url
        return base.rstrip("/") + call.path

    def _request(
        self, http: httpx.Client | httpx.AsyncClient, call: Call[Any], tokens: Tokens | None
    ) -> httpx.Request:
        headers = {"User-Agent": USER_AGENT}
        content: bytes | None = None
        if call.body is not NO_BODY:
            headers["Content-Type"] = "application/json"
            content = json.dumps(call.body).encode()
        if tokens is not None:
            headers["Authorization"] = f"Bearer {tokens.access_token}"
        return http.build_request(
            call.method, self._url(call), params=dict(call.params), headers=headers, content=content
        )

    def _tokens_for(self, call: Call[Any]) -> Tokens | None:
        if not call.authenticated:
            return None
        tokens = self.token_store.load()
        if tokens is None:
            raise NotLoggedIn("not logged in: log in first (automateos login)")
        return tokens

    @staticmethod
    def _unreachable(call: Call[Any], url: str, exc: httpx.TransportError) -> TransportError:
        service = "auth service" if call.service == "auth" else "workflows API"
        return TransportError(f"cannot reach the {service} at {url}: {exc or type(exc).__name__}")

    @staticmethod
    def _result(call: Call[T], response: httpx.Response) -> T:
        if response.is_error:
            raise error_for(response)
        return call.read(response)

    def _refresh_call(self, stale: Tokens) -> Call[Tokens] | Tokens:
        """The refresh to make, or the newer tokens another caller has stored meanwhile."""
        current = self.token_store.load()
        if current is not None and current.access_token != stale.access_token:
            return current
        return _calls.refresh(stale.refresh_token)

    def _expired_session(self, exc: AuthenticationError) -> AuthenticationError:
        # A refused refresh token cannot be used again: forget it, the user logs in anew.
        self.token_store.clear()
        return AuthenticationError(
            exc.status_code, f"the session has expired; log in again ({exc.message})", exc.detail
        )
