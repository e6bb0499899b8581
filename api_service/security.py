"""Who is calling: the bearer token checked against the database on every request.

The role and the active flag come from the database, not from the token, so a deactivated user's
live tokens stop working at once and a demoted admin loses admin rights at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from api_service.keys import READS, SETTINGS
from api_service.services.tokens import AccessClaims, decode_access_token
from shared.db.engine import driver_connection
from shared.errors import Forbidden, Unauthorized

CURRENT_USER_KEY: web.RequestKey[CurrentUser]
_USER_SQL = "SELECT username, role, is_active FROM users WHERE id = $1"


@dataclass(frozen=True, slots=True)
class CurrentUser:
    id: uuid.UUID
    username: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


CURRENT_USER_KEY = web.RequestKey("current_user", CurrentUser)


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`; a bare token (the original tutorial's way) works too."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise Unauthorized("Missing Authorization header")
    scheme, _, rest = header.partition(" ")
    token = rest.strip() if scheme.lower() == "bearer" else header
    if not token or " " in token:
        raise Unauthorized("Malformed Authorization header")
    return token


def authenticate(request: web.Request) -> AccessClaims:
    """The verified claims of the bearer token; no database read yet (see :func:`accept_user`)."""
    return decode_access_token(request.app[SETTINGS], bearer_token(request))


def accept_user(request: web.Request, user_id: uuid.UUID, row: Mapping[str, Any] | None) -> CurrentUser:
    """The caller, from their users row just read (``username``, ``role``, ``is_active``; None when
    there is none), cached on the request. Raises Unauthorized for a missing or deactivated user."""
    if row is None or not row["is_active"]:
        raise Unauthorized("This account is not active")
    user = CurrentUser(id=user_id, username=row["username"], role=row["role"])
    request[CURRENT_USER_KEY] = user
    return user


async def require_user(request: web.Request) -> CurrentUser:
    """The authenticated, active caller (cached on the request). Raises Unauthorized / TokenExpired."""
    cached = request.get(CURRENT_USER_KEY)
    if cached is not None:
        return cached
    claims = authenticate(request)
    async with driver_connection(request.app[READS]) as connection:
        row = await connection.fetchrow(_USER_SQL, claims.user_id)
    return accept_user(request, claims.user_id, row)


async def require_admin(request: web.Request) -> CurrentUser:
    user = await require_user(request)
    if not user.is_admin:
        raise Forbidden("Administrator rights required")
    return user
