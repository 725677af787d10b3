"""Request and response bodies of the auth API."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field

from services.auth.users.passwords import password_problem


def _acceptable(password: str) -> str:
    problem = password_problem(password)
    if problem is not None:
        # The message names the rule, never the password (errors echo no input either).
        raise ValueError(f"password {problem}")
    return password


NewPassword = Annotated[str, Field(min_length=8, max_length=1024), AfterValidator(_acceptable)]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    # The upper bound keeps a megabyte "password" from costing a megabyte of argon2 work.
    password: NewPassword


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(min_length=1, max_length=4096)


class UserOut(BaseModel):
    id: uuid.UUID
    email: str


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
