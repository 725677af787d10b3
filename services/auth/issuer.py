"""Issues the access/refresh token pair."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from services.auth.keys import KeyRing
from shared.settings import Settings
from shared.tokens import ACCESS_HEADER_TYP, ACCESS_TYPE, ALGORITHM, REFRESH_TYPE, InvalidToken


@dataclass(frozen=True)
class IssuedPair:
    access_token: str
    refresh_token: str
    refresh_jti: uuid.UUID
    refresh_expires_at: int
    expires_in: int


class TokenIssuer:
    def __init__(self, keys: KeyRing, settings: Settings) -> None:
        self.keys = keys
        self.settings = settings

    def issue(self, user_id: uuid.UUID, email: str) -> IssuedPair:
        now = int(time.time())
        key = self.keys.current
        common = {"iss": self.settings.jwt_issuer, "sub": str(user_id), "iat": now}
        access_exp = now + self.settings.access_token_ttl_seconds
        access = jwt.encode(
            {
                **common,
                "aud": self.settings.jwt_audience,
                "exp": access_exp,
                "typ": ACCESS_TYPE,
                "email": email,
                "jti": str(uuid.uuid4()),
            },
            key.private,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": ACCESS_HEADER_TYP},
        )
        refresh_jti = uuid.uuid4()
        refresh_exp = now + self.settings.refresh_token_ttl_seconds
        # A different audience and type: a refresh token is useless as an access token.
        refresh = jwt.encode(
            {
                **common,
                "aud": f"{self.settings.jwt_audience}:refresh",
                "exp": refresh_exp,
                "typ": REFRESH_TYPE,
                "jti": str(refresh_jti),
            },
            key.private,
            algorithm=ALGORITHM,
            headers={"kid": key.kid, "typ": "JWT"},
        )
        return IssuedPair(
            access, refresh, refresh_jti, refresh_exp, self.settings.access_token_ttl_seconds
        )

    async def verify_refresh(self, token: str) -> dict[str, Any]:
        """The claims of a valid refresh token (signature, expiry, issuer, audience, type)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        if not isinstance(kid, str):
            raise InvalidToken("token has no key id")
        key = await self.keys.key_for(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=f"{self.settings.jwt_audience}:refresh",
                issuer=self.settings.jwt_issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("refresh token expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("invalid refresh token") from exc
        if claims.get("typ") != REFRESH_TYPE:
            raise InvalidToken("not a refresh token")
        return claims
