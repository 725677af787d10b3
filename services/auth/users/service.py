"""Registration, login, refresh and logout: the rules, independent of HTTP."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.issuer import IssuedPair, TokenIssuer
from services.auth.users.passwords import PasswordHasher
from services.auth.users.repository import UserRepository
from shared.db.models import User
from shared.tokens import InvalidToken


@dataclass(frozen=True)
class Registered:
    """What a registration answers, the same whether or not the email was free."""

    id: uuid.UUID
    email: str


class BadCredentials(Exception):
    pass


class RefreshTokenReused(InvalidToken):
    """A revoked refresh token came back: the caller must commit the revocation it caused."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


async def register(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> Registered:
    """Create the account, or, when the email is taken, answer exactly as if it were created.

    Telling a taken email apart would let anyone test which addresses have accounts. So the
    password is hashed either way (the same work and time), and a taken email gets a fresh
    random id that belongs to nothing; its owner's account is untouched and logging in with the
    new password fails like any wrong password.
    """
    email = normalise_email(email)
    password_hash = await hasher.hash(password)
    repo = UserRepository(session)
    if await repo.by_email(email) is not None:
        return Registered(uuid.uuid4(), email)
    user = User(email=email, password_hash=password_hash)
    try:
        # A savepoint: losing a concurrent race leaves the request's transaction usable.
        async with session.begin_nested():
            await repo.add(user)
    except IntegrityError:
        return Registered(uuid.uuid4(), email)
    return Registered(user.id, email)


async def authenticate(
    session: AsyncSession, hasher: PasswordHasher, email: str, password: str
) -> User:
    """The user whose password this is; BadCredentials otherwise (same cost either way)."""
    user = await UserRepository(session).by_email(normalise_email(email))
    valid = await hasher.verify(password, user.password_hash if user else None)
    if user is None or not valid:
        raise BadCredentials()
    if hasher.needs_update(user.password_hash):
        # Hashed with an older release's parameters: store today's (committed with the login).
        user.password_hash = await hasher.hash(password)
    return user


async def issue_pair(
    session: AsyncSession, issuer: TokenIssuer, user: User, family_id: uuid.UUID | None = None
) -> IssuedPair:
    """A new pair; its refresh token joins `family_id` (a refresh) or starts a family (a login)."""
    pair = issuer.issue(user.id, user.email)
    await UserRepository(session).add_refresh_token(
        pair.refresh_jti, user.id, pair.refresh_expires_at, family_id or pair.refresh_jti
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
    return await issue_pair(session, issuer, user, revoked.family_id or revoked.jti)


async def log_out(session: AsyncSession, issuer: TokenIssuer, token: str) -> None:
    """Revoke the token's whole family: it and every token rotated before or after it.

    Any token of the family will do, spent or not: whoever holds an older one (a copied cookie)
    is logged out as well.
    """
    claims = await issuer.verify_refresh(token)
    try:
        jti = uuid.UUID(claims["jti"])
    except (ValueError, TypeError) as exc:
        raise InvalidToken("invalid refresh token") from exc
    repo = UserRepository(session)
    row = await repo.refresh_token(jti)
    if row is None:
        raise InvalidToken("unknown refresh token")
    await repo.revoke_family(row.family_id or row.jti)
