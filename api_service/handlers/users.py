"""/api/v1/users: me, list (admin), read, update, deactivate."""

from __future__ import annotations

from aiohttp import web

from api_service import openapi
from api_service.keys import ARQ, SESSIONS, SETTINGS
from api_service.responses import ok, ok_list
from api_service.schemas.users import UserListQuery, UserOut, UserUpdate
from api_service.security import require_admin, require_user
from api_service.services import users
from api_service.services.lightning_address import lightning_address
from api_service.validation import dump, parse_body, parse_query, path_uuid
from shared.config import Settings

PREFIX = "/api/v1/users"


def user_model(settings: Settings, user) -> UserOut:
    """The user as the API shows it, with its Lightning Address."""
    out = UserOut.model_validate(user)
    out.lightning_address = lightning_address(settings, user.username)
    return out


def _out(request: web.Request, user) -> dict:
    return dump(user_model(request.app[SETTINGS], user))


async def me(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return ok(request, _out(request, await users.get_user(request.app[SESSIONS], actor, actor.id)))


async def list_users(request: web.Request) -> web.Response:
    await require_admin(request)
    query = parse_query(request, UserListQuery)
    rows, total = await users.list_users(
        request.app[SESSIONS], search=query.q, offset=query.offset, limit=query.page_size
    )
    return ok_list(
        request, [_out(request, row) for row in rows], page=query.page, page_size=query.page_size, total=total
    )


async def get_user(request: web.Request) -> web.Response:
    actor = await require_user(request)
    user = await users.get_user(request.app[SESSIONS], actor, path_uuid(request))
    return ok(request, _out(request, user))


async def update_user(request: web.Request) -> web.Response:
    actor = await require_user(request)
    user_id = path_uuid(request)
    changes = await parse_body(request, UserUpdate)
    user = await users.update_user(
        request.app[SESSIONS],
        request.app[SETTINGS],
        request.app[ARQ],
        actor=actor,
        user_id=user_id,
        changes=changes,
    )
    return ok(request, _out(request, user))


async def delete_user(request: web.Request) -> web.Response:
    actor = await require_admin(request)
    user = await users.deactivate_user(request.app[SESSIONS], actor=actor, user_id=path_uuid(request))
    return ok(request, _out(request, user))


def setup(app: web.Application) -> None:
    app.router.add_get(f"{PREFIX}/me", me)
    app.router.add_get(PREFIX, list_users)
    app.router.add_get(f"{PREFIX}/{{id}}", get_user)
    app.router.add_put(f"{PREFIX}/{{id}}", update_user)
    app.router.add_patch(f"{PREFIX}/{{id}}", update_user)
    app.router.add_delete(f"{PREFIX}/{{id}}", delete_user)
    tags = ("users",)
    openapi.register("GET", f"{PREFIX}/me", "The caller", response_model=UserOut, tags=tags)
    openapi.register(
        "GET",
        PREFIX,
        "List users (q: case-insensitive username search)",
        response_model=UserOut,
        auth="admin",
        query_model=UserListQuery,
        paginated=True,
        tags=tags,
    )
    openapi.register(
        "GET",
        f"{PREFIX}/{{id}}",
        "One user (admin, or the caller itself)",
        response_model=UserOut,
        errors=(404,),
        tags=tags,
        description="Another user's id answers 404 for non-admins, as an unknown id does.",
    )
    update_doc = (
        "Partial update. Admins: username, password, role, isActive. Users, on themselves only: "
        "username, and password with currentPassword. A password change or deactivation "
        "revokes the user's refresh tokens."
    )
    for method in ("PUT", "PATCH"):
        openapi.register(
            method,
            f"{PREFIX}/{{id}}",
            "Update a user",
            request_model=UserUpdate,
            response_model=UserOut,
            errors=(403, 404, 409, 429),
            tags=tags,
            description=update_doc,
        )
    openapi.register(
        "DELETE",
        f"{PREFIX}/{{id}}",
        "Deactivate a user (history kept, tokens revoked)",
        response_model=UserOut,
        auth="admin",
        errors=(404, 409),
        tags=tags,
    )
