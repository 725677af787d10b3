"""PostgreSQL out of reach answers 503 with `Retry-After`, in the services that own a database.

A stopped server refuses connections (OSError), a frozen one times out (TimeoutError from the
engine's bounds, see engine.py), one shutting down or recovering says so (asyncpg's connection
and operator-intervention errors, wrapped by SQLAlchemy). All of those are "try again shortly";
any other database error is a bug and stays a logged 500.
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from shared.service import internal_error

RETRY_AFTER_SECONDS = 2
_OUTAGES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)


def is_outage(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) says the database cannot be reached right now."""
    current: BaseException | None = exc
    for _ in range(5):  # SQLAlchemy wraps a driver error at most a few levels deep
        if current is None:
            return False
        if isinstance(current, _OUTAGES):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        current = current.__cause__
    return False


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    if not is_outage(exc):
        return await internal_error(request, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; try again shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def answer_outages_with_503(app: FastAPI) -> None:
    """Register the handlers on an app whose requests use PostgreSQL."""
    for kind in (*_OUTAGES, DBAPIError, asyncpg.PostgresError):
        app.add_exception_handler(kind, _unavailable)
