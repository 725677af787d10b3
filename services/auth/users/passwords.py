"""Password hashing with a bounded memory cost, and the rule a new password must pass.

argon2id with OWASP's first recommended setting (m = 19 MiB, t = 2, p = 1). Each hash or verify
holds its `m` of memory for its duration, so at most `concurrency` run at once per process: the
memory a burst of logins can take is `concurrency x m` (docs/kubernetes.md sizes the pod from it).
A caller waits for a slot at most `queue_timeout_s`, then gets HashingBusy (503, Retry-After).
Hashes made with other parameters (older releases: m = 64 MiB, t = 3, p = 4) still verify and are
re-hashed at the next successful login (`needs_update`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

from anyio import to_thread
from passlib.context import CryptContext

from shared.secret_strength import is_pattern

MEMORY_COST_KIB = 19 * 1024
TIME_COST = 2
PARALLELISM = 1
MIN_LENGTH = 8

_context = CryptContext(
    schemes=["argon2"],
    argon2__type="ID",
    argon2__memory_cost=MEMORY_COST_KIB,
    argon2__rounds=TIME_COST,
    argon2__parallelism=PARALLELISM,
)
_COMMON_PASSWORDS = Path(__file__).with_name("common-passwords.txt")
T = TypeVar("T")


class HashingBusy(Exception):
    """Every hashing slot stayed taken for the whole queueing time."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("too many password checks in progress; try again shortly")
        self.retry_after_s = retry_after_s


class PasswordHasher:
    """argon2id behind a semaphore: hashes and verifies, never more than `concurrency` at once."""

    def __init__(self, concurrency: int, queue_timeout_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self.queue_timeout_s = queue_timeout_s
        # Verified when an email is unknown, so an unknown email costs what a known one does.
        self._dummy = _context.hash("automateos-timing-equaliser")

    async def _bounded(self, work: Callable[..., T], *args: str) -> T:
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
        except TimeoutError:
            raise HashingBusy(max(1, math.ceil(self.queue_timeout_s))) from None
        try:
            # Off the event loop; a cancelled request still waits for its thread (anyio's
            # default), so the slot is only freed once the memory is.
            return await to_thread.run_sync(work, *args)
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        """A new argon2id hash of `password`."""
        return await self._bounded(_context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether `password` matches; against a dummy hash (same cost) when there is none."""
        return await self._bounded(_context.verify, password, password_hash or self._dummy)

    @staticmethod
    def needs_update(password_hash: str) -> bool:
        """Whether the hash was made with other parameters than today's."""
        return bool(_context.needs_update(password_hash))


@cache
def _common_passwords() -> frozenset[str]:
    # The 11,611 passwords of 8+ characters among the 30,000 most common in leaked password
    # sets (the list zxcvbn ships, MIT licence), lower-cased: loaded once, ~1 MB.
    lines = _COMMON_PASSWORDS.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problem(password: str) -> str | None:
    """Why a new password is refused (None when it is acceptable).

    At least 8 characters (DESIGN.md); not one of the common passwords of leaked sets; not a
    repeated unit or a straight run. No network call: the list ships with the service.
    """
    if len(password) < MIN_LENGTH:
        return f"must be at least {MIN_LENGTH} characters"
    if password.lower() in _common_passwords():
        return "is one of the most common passwords; choose another"
    if is_pattern(password):
        return "is a repeated or sequential pattern; choose another"
    return None
