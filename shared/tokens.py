"""Access-token verification for every service that accepts a bearer token.

Tokens are EdDSA (Ed25519) JWTs signed by the auth service. Verifiers pin the algorithm, require
`exp`, `iss`, `aud`, `sub` and the access token type, and take the public keys from the auth
service's JWKS: cached, and fetched again when a token names a key id we have not seen, so a key
rotation needs no restart. A refresh token (another type) is never accepted as an access token.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import httpx
import jwt
from fastapi import Depends, HTTPException, Request, status

ALGORITHM = "EdDSA"
ACCESS_TYPE = "access"
REFRESH_TYPE = "refresh"
ACCESS_HEADER_TYP = "at+jwt"


class InvalidToken(Exception):
    """The token is missing, malformed, expired, forged or of the wrong type."""


@dataclass(frozen=True)
class AccessClaims:
    user_id: uuid.UUID
    email: str | None
    expires_at: int


class JwksCache:
    """Public keys by `kid`, fetched from the auth service over an internal call."""

    def __init__(self, jwks_url: str, http: httpx.AsyncClient, max_age_s: float = 300) -> None:
        self.jwks_url = jwks_url
        self.http = http
        self.max_age_s = max_age_s
        # An unknown kid may trigger a refetch at most this often, so forged kids cannot
        # turn us into a amplifier against the auth service.
        self.min_refetch_interval_s = 5.0
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def key_for(self, kid: str) -> Any:
        now = time.monotonic()
        stale = now - self._fetched_at > self.max_age_s
        if kid not in self._keys or stale:
            async with self._lock:
                since = time.monotonic() - self._fetched_at
                if (kid not in self._keys and since > self.min_refetch_interval_s) or (
                    since > self.max_age_s
                ):
                    await self._fetch()
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown signing key")
        return key

    async def _fetch(self) -> None:
        try:
            response = await self.http.get(self.jwks_url, timeout=5.0)
            response.raise_for_status()
            keys = {}
            for jwk in response.json().get("keys", []):
                if jwk.get("kid"):
                    keys[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        except (httpx.HTTPError, ValueError, jwt.PyJWKError):
            # Keep serving with the keys we have; the next unknown kid will try again.
            self._fetched_at = time.monotonic()
            if not self._keys:
                raise InvalidToken("signing keys unavailable") from None
            return
        self._keys = keys
        self._fetched_at = time.monotonic()


class KeySource(Protocol):
    """Where a verifier gets the public key for a key id (the JWKS cache, or auth's own keys)."""

    async def key_for(self, kid: str) -> Any: ...


class TokenVerifier:
    """Verifies access tokens against the JWKS with pinned algorithm, issuer and audience."""

    def __init__(self, jwks: KeySource, issuer: str, audience: str) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audience = audience

    async def verify_access(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM or header.get("typ") != ACCESS_HEADER_TYP:
            raise InvalidToken("not an access token")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        key = await self.jwks.key_for(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid token") from exc
        if claims.get("typ") != ACCESS_TYPE:
            raise InvalidToken("not an access token")
        try:
            user_id = uuid.UUID(claims["sub"])
        except (ValueError, TypeError) as exc:
            raise InvalidToken("invalid subject") from exc
        return AccessClaims(user_id=user_id, email=claims.get("email"), expires_at=claims["exp"])


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client which scheme to use (RFC 6750)."""
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": 'Bearer realm="automateos"'},
    )


def bearer_token(request: Request) -> str:
    """The token of an `Authorization: Bearer ...` header, or a 401."""
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("missing bearer token")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("authorization header must be 'Bearer <token>'")
    return token.strip()


async def current_claims(request: Request) -> AccessClaims:
    """FastAPI dependency: the verified claims of the caller (app.state.verifier does the work)."""
    token = bearer_token(request)
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify_access(token)
    except InvalidToken as exc:
        raise unauthorized(str(exc)) from exc


async def current_user_id(claims: Annotated[AccessClaims, Depends(current_claims)]) -> uuid.UUID:
    """FastAPI dependency: the caller's user id."""
    return claims.user_id


CurrentUserId = Annotated[uuid.UUID, Depends(current_user_id)]
