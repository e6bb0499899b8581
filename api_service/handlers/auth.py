"""POST /api/v1/auth/register, /login, /refresh, /logout."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.handlers.users import user_model
from api_service.keys import ARQ, SESSIONS, SETTINGS
from api_service.responses import ok
from api_service.schemas.auth import AuthOut, LoginRequest, LogoutRequest, RefreshRequest, RegisterRequest
from api_service.security import require_user
from api_service.services import auth
from api_service.validation import dump, parse_body

PREFIX = "/api/v1/auth"
# Responses carrying tokens must not be stored by any cache.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def client_ip(request: web.Request) -> str:
    # The socket peer only: X-Forwarded-For is client-controlled unless a trusted proxy sets it.
    return request.remote or "unknown"


def _pair_out(request: web.Request, pair: auth.TokenPair) -> dict:
    return dump(
        AuthOut(
            user=user_model(request.app[SETTINGS], pair.user),
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
            expires_in=pair.expires_in,
        )
    )


async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterRequest)
    pair = await auth.register(
        request.app[SESSIONS],
        request.app[SETTINGS],
        request.app[ARQ],
        username=body.username,
        password=body.password,
        admin_key=body.admin_key,
        client_ip=client_ip(request),
    )
    return ok(request, _pair_out(request, pair), status=201, headers=NO_STORE)


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginRequest)
    pair = await auth.login(
        request.app[SESSIONS],
        request.app[SETTINGS],
        request.app[ARQ],
        username=body.username,
        password=body.password,
        client_ip=client_ip(request),
    )
    return ok(request, _pair_out(request, pair), headers=NO_STORE)


async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshRequest)
    pair = await auth.refresh(request.app[SESSIONS], request.app[SETTINGS], refresh_token=body.refresh_token)
    return ok(request, _pair_out(request, pair), headers=NO_STORE)


async def logout(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, LogoutRequest)
    await auth.logout(request.app[SESSIONS], user_id=user.id, refresh_token=body.refresh_token)
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/register", register)
    app.router.add_post(f"{PREFIX}/login", login)
    app.router.add_post(f"{PREFIX}/refresh", refresh)
    app.router.add_post(f"{PREFIX}/logout", logout)
    tags = ("auth",)
    openapi.register(
        "POST",
        f"{PREFIX}/register",
        "Create an account and log in",
        request_model=RegisterRequest,
        response_model=AuthOut,
        auth=None,
        status=201,
        errors=(403, 409, 429),
        tags=tags,
        description="adminKey grants the admin role when it equals ADMIN_KEY; a wrong one is 403.",
    )
    openapi.register(
        "POST",
        f"{PREFIX}/login",
        "Log in with username and password",
        request_model=LoginRequest,
        response_model=AuthOut,
        auth=None,
        errors=(401, 429),
        tags=tags,
    )
    openapi.register(
        "POST",
        f"{PREFIX}/refresh",
        "Exchange a refresh token for a new pair",
        request_model=RefreshRequest,
        response_model=AuthOut,
        auth=None,
        errors=(401,),
        tags=tags,
        description="The refresh token is spent. Presenting a spent one revokes its whole session.",
    )
    openapi.register(
        "POST",
        f"{PREFIX}/logout",
        "Revoke the session of a refresh token",
        request_model=LogoutRequest,
        auth="user",
        status=204,
        tags=tags,
    )
