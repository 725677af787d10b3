"""The public auth API: /auth/register, /auth/login, /auth/refresh, /auth/logout, /auth/me,
JWKS."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status

from services.auth.deps import HasherDep, IssuerDep, LoginClientsDep, SessionDep, ThrottleDep
from services.auth.issuer import IssuedPair
from services.auth.users import service
from services.auth.users.repository import UserRepository
from services.auth.users.schemas import (
    Credentials,
    LoginRequest,
    RefreshRequest,
    TokenPair,
    UserOut,
)
from shared.tokens import CurrentUserId, InvalidToken, unauthorized

router = APIRouter()


def _pair(pair: IssuedPair) -> TokenPair:
    return TokenPair(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/auth/register", status_code=status.HTTP_201_CREATED, response_model=UserOut)
async def register(body: Credentials, session: SessionDep, hasher: HasherDep) -> UserOut:
    """Create an account. A taken email answers the same 201 (docs/guarantees.md says why)."""
    registered = await service.register(session, hasher, body.email, body.password)
    return UserOut(id=registered.id, email=registered.email)


@router.post("/auth/login", response_model=TokenPair)
async def login(
    body: LoginRequest,
    request: Request,
    session: SessionDep,
    issuer: IssuerDep,
    hasher: HasherDep,
    throttle: ThrottleDep,
    clients: LoginClientsDep,
) -> TokenPair:
    """A token pair for the right password; 401 otherwise, 429 once a client failed too often."""
    email = service.normalise_email(body.email)
    # The peer, the client a trusted proxy forwarded (AUTOMATEOS_TRUSTED_PROXIES), or the
    # browser the console logged in for (services/auth/clients.py).
    client = clients.of(request)
    wait = await throttle.reserve(email, client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {wait} seconds",
            headers={"Retry-After": str(wait)},
        )
    try:
        user = await service.authenticate(session, hasher, email, body.password)
    except service.BadCredentials:
        raise unauthorized("invalid email or password") from None  # the reservation stays
    except Exception:
        await throttle.abandoned(email, client)
        raise
    await throttle.succeeded(email, client)
    return _pair(await service.issue_pair(session, issuer, user))


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh(body: RefreshRequest, session: SessionDep, issuer: IssuerDep) -> TokenPair:
    try:
        pair = await service.refresh(session, issuer, body.refresh_token)
    except service.RefreshTokenReused as exc:
        await session.commit()  # keep the revocation of the whole token family
        raise unauthorized(str(exc)) from exc
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    return _pair(pair)


@router.post("/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(body: RefreshRequest, session: SessionDep, issuer: IssuerDep) -> Response:
    """Revoke the refresh token's whole family; 401 for a token that is not ours or expired."""
    try:
        await service.log_out(session, issuer, body.refresh_token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/auth/me", response_model=UserOut)
async def me(user_id: CurrentUserId, session: SessionDep) -> UserOut:
    user = await UserRepository(session).by_id(user_id)
    if user is None:
        raise unauthorized("user no longer exists")
    return UserOut(id=user.id, email=user.email)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request, response: Response) -> dict[str, object]:
    response.headers["Cache-Control"] = "public, max-age=300"
    keys: dict[str, object] = request.app.state.keys.jwks()
    return keys


@router.get("/internal/jwks.json", include_in_schema=False)
async def internal_jwks(request: Request) -> dict[str, object]:
    """The same keys on the internal path other services are configured with."""
    keys: dict[str, object] = request.app.state.keys.jwks()
    return keys
