"""Which database errors mean "unavailable, try again" (503) and which are bugs (500)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError

from shared.db.errors import is_outage


def _wrapped(driver_error: Exception, *, invalidated: bool = False) -> DBAPIError:
    """A driver error as SQLAlchemy raises it: wrapped, with the original as its cause."""
    try:
        try:
            raise driver_error
        except Exception as exc:
            raise DBAPIError("SELECT 1", None, exc, connection_invalidated=invalidated) from exc
    except DBAPIError as wrapped:
        return wrapped


class TestIsOutage:
    @pytest.mark.parametrize(
        "error",
        [
            ConnectionRefusedError(111, "Connect call failed"),
            TimeoutError(),
            asyncpg.CannotConnectNowError("the database system is starting up"),
            asyncpg.exceptions.AdminShutdownError("terminating connection"),
            _wrapped(asyncpg.ConnectionDoesNotExistError("connection was closed")),
            _wrapped(ValueError("anything"), invalidated=True),
        ],
    )
    def test_the_server_out_of_reach_is_an_outage(self, error: Exception) -> None:
        assert is_outage(error)

    @pytest.mark.parametrize(
        "error",
        [
            ValueError("a bug"),
            IntegrityError("INSERT", None, asyncpg.UniqueViolationError("duplicate key")),
            _wrapped(asyncpg.UndefinedColumnError("column does not exist")),
        ],
    )
    def test_a_query_the_server_refused_is_not(self, error: Exception) -> None:
        assert not is_outage(error)
