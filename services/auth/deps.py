"""Dependency aliases of the auth service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.auth.clients import LoginClients
from services.auth.issuer import TokenIssuer
from services.auth.ratelimit import LoginThrottle
from services.auth.users.passwords import PasswordHasher
from shared.db.deps import SessionDep as SessionDep  # re-exported: every alias lives here


def _issuer(request: Request) -> TokenIssuer:
    issuer: TokenIssuer = request.app.state.issuer
    return issuer


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle = request.app.state.throttle
    return throttle


def _login_clients(request: Request) -> LoginClients:
    clients: LoginClients = request.app.state.login_clients
    return clients


def _hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


HasherDep = Annotated[PasswordHasher, Depends(_hasher)]
LoginClientsDep = Annotated[LoginClients, Depends(_login_clients)]
IssuerDep = Annotated[TokenIssuer, Depends(_issuer)]
ThrottleDep = Annotated[LoginThrottle, Depends(_throttle)]
