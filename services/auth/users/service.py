"""Registration, login and refresh: the rules, independent of HTTP."""

from __future__ import annotations

import uuid

from anyio import to_thread
from passlib.context import CryptContext
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.issuer import IssuedPair, TokenIssuer
from services.auth.users.repository import UserRepository
from shared.db.models import User
from shared.tokens import InvalidToken

# argon2id with the library's current parameters; hashes made with older parameters verify and
# are flagged by `needs_update` (not used yet).
passwords = CryptContext(schemes=["argon2"], deprecated="auto")
# Verifying against this when the email is unknown makes both failures take the same time.
_DUMMY_HASH = passwords.hash("automateos-timing-equaliser")


class EmailTaken(Exception):
    pass


class BadCredentials(Exception):
    pass


class RefreshTokenReused(InvalidToken):
    """A revoked refresh token came back: the caller must commit the revocation it caused."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def hash_password(password: str) -> str:
    # argon2 is deliberately slow: keep it off the event loop.
    return await to_thread.run_sync(passwords.hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    return await to_thread.run_sync(passwords.verify, password, password_hash)


async def register(session: AsyncSession, email: str, password: str) -> User:
    repo = UserRepository(session)
    email = normalise_email(email)
    if await repo.by_email(email) is not None:
        raise EmailTaken(email)
    user = User(email=email, password_hash=await hash_password(password))
    try:
        await repo.add(user)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise EmailTaken(email) from exc
    return user


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    user = await UserRepository(session).by_email(normalise_email(email))
    valid = await verify_password(password, user.password_hash if user else _DUMMY_HASH)
    if user is None or not valid:
        raise BadCredentials()
    return user


async def issue_pair(session: AsyncSession, issuer: TokenIssuer, user: User) -> IssuedPair:
    pair = issuer.issue(user.id, user.email)
    await UserRepository(session).add_refresh_token(
        pair.refresh_jti, user.id, pair.refresh_expires_at
    )
    return pair


async def refresh(session: AsyncSession, issuer: TokenIssuer, token: str) -> IssuedPair:
    """Rotate: the presented refresh token is revoked and a new pair issued.

    Presenting an already-revoked token means it leaked (someone used it first), so every
    refresh token of that user is revoked and the user must log in again.
    """
    claims = await issuer.verify_refresh(token)
    repo = UserRepository(session)
    try:
        jti, user_id = uuid.UUID(claims["jti"]), uuid.UUID(claims["sub"])
    except (ValueError, TypeError) as exc:
        raise InvalidToken("invalid refresh token") from exc
    revoked = await repo.revoke_refresh_token(jti)
    if revoked is None:
        await repo.revoke_all_refresh_tokens(user_id)
        raise RefreshTokenReused("refresh token already used or revoked")
    user = await repo.by_id(user_id)
    if user is None:
        raise InvalidToken("unknown user")
    return await issue_pair(session, issuer, user)
