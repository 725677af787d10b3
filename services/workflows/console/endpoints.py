"""The web console: its page, its static files and its login session under /console/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Cookie, Depends, Header, HTTPException, Request, Response, status
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from services.workflows.console.session import (
    COOKIE,
    COOKIE_PATH,
    CSRF_HEADER,
    AuthClient,
    AuthRejected,
    AuthUnavailable,
    ConsoleTokens,
    page_tokens,
)
from services.workflows.deps import SettingsDep

STATIC = Path(__file__).parent / "static"

# Strict: no inline script or style, no eval, nothing from another origin. Everything the
# console shows comes from webhook senders; this is the second wall if escaping ever failed.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class ConsoleStatic(StaticFiles):
    """The console's files with its security headers; revalidated (ETag) on every load."""

    async def get_response(self, path: str, scope: Scope) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def static_files() -> ConsoleStatic:
    return ConsoleStatic(directory=STATIC)


class Login(BaseModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


def _auth(request: Request) -> AuthClient:
    client: AuthClient = request.app.state.console_auth
    return client


AuthDep = Annotated[AuthClient, Depends(_auth)]


def _from_console(x_automateos_console: Annotated[str | None, Header()] = None) -> None:
    if x_automateos_console != "1":
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing header {CSRF_HEADER}: 1")


router = APIRouter(include_in_schema=False)
session_router = APIRouter(tags=["console"], dependencies=[Depends(_from_console)])


@router.get("/console")
async def console_redirect() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=status.HTTP_308_PERMANENT_REDIRECT)


@router.get("/console/")
async def console_page() -> FileResponse:
    return FileResponse(
        STATIC / "index.html",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        media_type="text/html; charset=utf-8",
    )


def _set_cookie(response: Response, request: Request, refresh_token: str, max_age: int) -> None:
    # Secure whenever the browser reached us over https (directly or through the Ingress);
    # plain http only for local development on 127.0.0.1.
    secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
    response.set_cookie(
        COOKIE,
        refresh_token,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def _clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def _without_input(detail: Any) -> Any:
    """Auth's 422 entries minus the rejected `input`: it may be the password just typed."""
    if not isinstance(detail, list):
        return detail
    keep = ("loc", "msg", "type")
    return [{k: v for k, v in e.items() if k in keep} if isinstance(e, dict) else e for e in detail]


def _browser(request: Request) -> str:
    # The browser's address (or what the Ingress forwarded): auth throttles logins per browser.
    return request.client.host if request.client else "unknown"


def _failure(exc: AuthRejected | AuthUnavailable) -> JSONResponse:
    if isinstance(exc, AuthRejected):
        return JSONResponse({"detail": _without_input(exc.detail)}, status_code=exc.status)
    return JSONResponse({"detail": "the auth service is unavailable; try again"}, status_code=503)


@session_router.post("/console/session", response_model=ConsoleTokens)
async def log_in(
    body: Login, request: Request, auth: AuthDep, settings: SettingsDep
) -> ConsoleTokens | JSONResponse:
    """Log in with email and password: the access token in the body, the refresh token in an
    HttpOnly SameSite=Strict cookie."""
    try:
        pair = await auth.login(body.email, body.password, _browser(request))
    except (AuthRejected, AuthUnavailable) as exc:
        return _failure(exc)
    tokens = page_tokens(pair)
    response = JSONResponse(tokens.model_dump())
    _set_cookie(response, request, pair["refresh_token"], settings.refresh_token_ttl_seconds)
    return response


@session_router.post("/console/register", response_model=ConsoleTokens)
async def register(
    body: Login, request: Request, auth: AuthDep, settings: SettingsDep
) -> ConsoleTokens | JSONResponse:
    """Create an account with auth, then log in as for `POST /console/session`. Through this
    origin for the same reason as login: the browser never talks to auth directly."""
    try:
        await auth.register(body.email, body.password)
        pair = await auth.login(body.email, body.password, _browser(request))
    except (AuthRejected, AuthUnavailable) as exc:
        return _failure(exc)
    response = JSONResponse(page_tokens(pair).model_dump())
    _set_cookie(response, request, pair["refresh_token"], settings.refresh_token_ttl_seconds)
    return response


@session_router.post("/console/session/refresh", response_model=ConsoleTokens)
async def refresh(
    request: Request,
    auth: AuthDep,
    settings: SettingsDep,
    refresh_token: Annotated[str | None, Cookie(alias=COOKIE)] = None,
) -> ConsoleTokens | Response:
    """A fresh access token from the session cookie. 204 when there is no session to restore
    (the page then shows the login form), 401 when the cookie is no longer valid."""
    if not refresh_token:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    try:
        pair = await auth.refresh(refresh_token)
    except (AuthRejected, AuthUnavailable) as exc:
        response = _failure(exc)
        if isinstance(exc, AuthRejected):
            _clear_cookie(response)
        return response
    response = JSONResponse(page_tokens(pair).model_dump())
    _set_cookie(response, request, pair["refresh_token"], settings.refresh_token_ttl_seconds)
    return response


@session_router.delete("/console/session", status_code=status.HTTP_204_NO_CONTENT)
async def log_out(
    auth: AuthDep, refresh_token: Annotated[str | None, Cookie(alias=COOKIE)] = None
) -> Response:
    """End the session: auth revokes the refresh token's whole family and the cookie goes (the
    page drops its access token itself). While auth is unreachable the answer is 503, and the
    cookie goes all the same: on a shared computer the next person must not reload into it."""
    response: Response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if refresh_token:
        try:
            await auth.logout(refresh_token)
        except AuthUnavailable as exc:
            response = _failure(exc)
        except AuthRejected:
            pass  # expired or already revoked: nothing is left to revoke
    _clear_cookie(response)
    return response
