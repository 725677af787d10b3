"""The errors the client raises: one class per kind of failure, each carrying the API's message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class AutomateOSError(Exception):
    """Anything the client raises."""


class TransportError(AutomateOSError):
    """The service could not be reached, or did not answer in time."""


class NotLoggedIn(AutomateOSError):
    """The call needs tokens and the client has none (log in first)."""


@dataclass(frozen=True)
class Issue:
    """One problem a 422 names: where (`loc`, FastAPI-shaped) and what (`msg`)."""

    loc: tuple[str | int, ...]
    msg: str

    @property
    def node(self) -> str | int | None:
        """The node the issue is about (its id, or its index), for a workflow definition."""
        if len(self.loc) >= 3 and self.loc[:2] == ("body", "nodes"):
            return self.loc[2]
        return None

    @property
    def field(self) -> str:
        """The dotted field path inside the node, or inside the body when no node is named."""
        rest = self.loc[3:] if self.node is not None else self.loc[1:]
        return ".".join(str(part) for part in rest)

    def __str__(self) -> str:
        if self.node is not None:
            where = f"node {self.node}" + (f", field {self.field}" if self.field else "")
        else:
            where = f"field {self.field}" if self.field else "request"
        return f"{where}: {self.msg}"


class APIError(AutomateOSError):
    """The API answered with an error status; `message` is what it said."""

    def __init__(self, status_code: int, message: str, detail: Any = None) -> None:
        super().__init__(f"{status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.detail = detail


class AuthenticationError(APIError):
    """401: the credentials or tokens were refused (and refreshing did not help)."""


class PermissionDenied(APIError):
    """403."""


class NotFoundError(APIError):
    """404: no such thing for this user (someone else's looks the same)."""


class ConflictError(APIError):
    """409: the request conflicts with the current state (e.g. cancelling an ended run)."""


class ValidationError(APIError):
    """422: the request was refused; `issues` name each field (and node) that was wrong."""

    def __init__(self, status_code: int, message: str, detail: Any = None) -> None:
        super().__init__(status_code, message, detail)
        self.issues = _issues(detail)


class RateLimited(APIError):
    """429: too many requests; `retry_after` is the server's advice in seconds, if given."""

    def __init__(
        self, status_code: int, message: str, detail: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(status_code, message, detail)
        self.retry_after = retry_after


class ServerError(APIError):
    """5xx: the service failed or is unavailable (503: try again later)."""


_BY_STATUS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def _issues(detail: Any) -> list[Issue]:
    if not isinstance(detail, list):
        return []
    issues = []
    for entry in detail:
        if isinstance(entry, dict):
            loc = tuple(part for part in entry.get("loc", ()) if isinstance(part, str | int))
            issues.append(Issue(loc=loc, msg=str(entry.get("msg", ""))))
    return issues


def _message(detail: Any, fallback: str) -> str:
    if isinstance(detail, str):
        return detail
    issues = _issues(detail)
    if issues:
        return "; ".join(str(issue) for issue in issues)
    return fallback


def error_for(response: httpx.Response) -> APIError:
    """The typed error for an error response."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    fallback = response.text.strip()[:200] or response.reason_phrase or "error"
    message = _message(detail, fallback)
    code = response.status_code
    if code == 429:
        retry = response.headers.get("Retry-After", "")
        return RateLimited(code, message, detail, float(retry) if retry.isdigit() else None)
    if code >= 500:
        return ServerError(code, message, detail)
    return _BY_STATUS.get(code, APIError)(code, message, detail)


class WaitTimeout(AutomateOSError):
    """A run did not end within the time given to wait for it."""
