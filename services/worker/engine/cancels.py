"""Cancellations reach the runs in flight through Redis pub/sub, at no cost per step.

`POST /runs/{id}/cancel` marks the run `cancelled` in PostgreSQL (that is what makes it stick:
a later claim or a checkpoint of the run sees it) and publishes the run id. Each worker process
listens once; a run of this process that is in flight sees its flag at its next step boundary.
A message missed while Redis was away only delays the stop to the run's next checkpoint or its
end, whose record keeps the status `cancelled`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis

from shared.queue import CANCEL_CHANNEL

log = logging.getLogger(__name__)

_RECONNECT_S = 1.0


class CancelFlag:
    """Whether one run in flight was cancelled."""

    def __init__(self) -> None:
        self.set = False

    def __call__(self) -> bool:
        return self.set


class CancelWatch:
    """Listens for cancelled run ids and flags the ones running in this process."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self._flags: dict[str, CancelFlag] = {}
        self._task: asyncio.Task[None] | None = None

    def track(self, run_id: str) -> CancelFlag:
        """Start watching `run_id` (call `forget` when its delivery ends)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._listen())
        return self._flags.setdefault(run_id, CancelFlag())

    def forget(self, run_id: str) -> None:
        """Stop watching `run_id`."""
        self._flags.pop(run_id, None)

    async def _listen(self) -> None:
        while True:
            try:
                async with self.client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CANCEL_CHANNEL)
                    async for message in pubsub.listen():
                        data = message.get("data")
                        run_id = data.decode() if isinstance(data, bytes) else str(data)
                        flag = self._flags.get(run_id)
                        if flag is not None:
                            flag.set = True
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("cancel channel lost (%s); resubscribing", exc)
            await asyncio.sleep(_RECONNECT_S)

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
