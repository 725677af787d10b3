"""What one delivery of a run holds: its database connection, and the hooks its runner calls.

A process runs up to 32 deliveries at once, so a delivery must not keep a pooled connection
while its nodes wait on someone else. A run of inline nodes (no waiting) keeps its connection
from claim to final write, since a checkout per statement measured ~0.4 ms each; a run that
waits gives it back before its nodes start and checks one out per write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.worker.engine import items, repository
from services.worker.engine.cancels import CancelFlag
from services.worker.engine.parking import Parking
from services.worker.engine.steps import StepRecord

log = logging.getLogger(__name__)

T = TypeVar("T")

# Checkpoints are worth waiting for: failing one means the delivery stops and a redelivery
# may execute the step's effect again.
CHECKPOINT_TRIES = 8


def is_transient(exc: BaseException) -> bool:
    """A connection-level failure (server restarting, network blip), not a bad statement."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, OSError | TimeoutError)


class DeliveryConnection:
    """A pooled connection for a delivery's statements, replaced if it breaks."""

    def __init__(self, db: AsyncEngine) -> None:
        self.db = db
        self.conn: AsyncConnection | None = None

    async def run(
        self, what: str, tries: int, operation: Callable[[AsyncConnection], Awaitable[T]]
    ) -> T:
        """Run `operation` on the connection, retrying transient failures `tries` times."""
        delay = 0.2
        for attempt in range(1, tries + 1):
            try:
                if self.conn is None:
                    self.conn = await self.db.connect()
                return await operation(self.conn)
            except Exception as exc:
                if attempt == tries or not is_transient(exc):
                    raise
                await self.close()
                log.warning(
                    "database unavailable to %s (%s); retrying in %.1fs",
                    what,
                    type(exc).__name__,
                    delay,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Give the connection back to the pool (the next `run` checks one out again)."""
        if self.conn is not None:
            conn, self.conn = self.conn, None
            with contextlib.suppress(Exception):
                await conn.close()


class DeliveryHooks:
    """The runner's view of its delivery: cancellation, checkpoints, callbacks."""

    def __init__(
        self,
        db: DeliveryConnection,
        parking: Parking,
        flag: CancelFlag,
        *,
        run_id: uuid.UUID,
        attempt: int,
        hold_connection: bool,
    ) -> None:
        self.db = db
        self.parking = parking
        self.flag = flag
        self.run_id = run_id
        self.attempt = attempt
        self.hold_connection = hold_connection
        self.stopped = False

    def cancelled(self) -> bool:
        """Whether a cancellation reached this process for the run."""
        return self.flag() or self.stopped

    async def checkpoint(self, steps: Sequence[StepRecord]) -> bool:
        """Write `steps` before the run goes on; False when it is not ours to continue."""
        rows = [step.as_row(keep_resume=True) for step in steps]
        owned = await self.db.run(
            "record a step",
            CHECKPOINT_TRIES,
            lambda conn: repository.checkpoint(conn, self.run_id, self.attempt, rows),
        )
        if not self.hold_connection:
            await self.db.close()
        if not owned:
            # Cancelled (or taken over by a later delivery): stop at this boundary.
            self.stopped = True
        return owned

    async def checkpoint_items(self, step: StepRecord, done: Sequence[items.ItemRecord]) -> bool:
        """Write these for-each items of `step` before they count as done; as `checkpoint`."""
        key = {"position": step.position, "node_id": step.node_id, "type": step.type}
        rows = [item.as_row(step.position, keep_resume=True) for item in done]
        owned = await self.db.run(
            "record an item",
            CHECKPOINT_TRIES,
            lambda conn: items.checkpoint_items(conn, self.run_id, self.attempt, key, rows),
        )
        if not self.hold_connection:
            await self.db.close()
        if not owned:
            self.stopped = True
        return owned

    async def take_callback(self) -> tuple[bool, Any]:
        """The callback POSTed to the run's resume URL, if one came."""
        return await self.parking.take_callback(str(self.run_id))
