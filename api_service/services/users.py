"""Users: creation (with the ledger account), reading, updating and deactivation, with the rules
of who may do what. Shared by the HTTP handlers and the CLI (create-admin, seed).

Access rule: an admin sees and edits everyone; a user only itself, and for anyone else's id gets
404 exactly as for an id that does not exist, so ids do not reveal which users exist.

Lock order: every transaction that touches a user's refresh tokens locks the user row first, so a
deactivation and a concurrent login/refresh serialise (no token issued after the revocation) and
cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service import ratelimit
from api_service.services import passwords, refresh_tokens
from shared import ledger
from shared.config import Settings
from shared.db.models import User
from shared.db.queries import users as queries
from shared.errors import Conflict, Forbidden, InvalidCredentials, NotFound, UsernameTaken, ValidationError

if TYPE_CHECKING:
    from api_service.schemas.users import UserUpdate
    from api_service.security import CurrentUser

RATE_WINDOW_S = 60
_PLAIN_FIELDS = {"username", "role", "is_active"}


async def insert_user_with_account(
    session: AsyncSession, *, username: str, password_hash: str, role: str
) -> User:
    """Insert the user and its ledger account in the caller's transaction; UsernameTaken on a duplicate."""
    try:
        async with session.begin_nested():
            user = await queries.insert_user(
                session, username=username, password_hash=password_hash, role=role
            )
    except IntegrityError as exc:
        if queries.is_username_conflict(exc):
            raise UsernameTaken() from None
        raise
    await ledger.create_user_account(session, user.id)
    return user


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    username: str,
    password: str,
    role: str = "user",
) -> User:
    """Create a user (already validated name and password) with its ledger account, in one transaction.

    The password is hashed before the transaction opens, so no connection waits on bcrypt."""
    password_hash = await passwords.hash_password(password, settings.bcrypt_cost)
    async with sessions() as session, session.begin():
        return await insert_user_with_account(
            session, username=username, password_hash=password_hash, role=role
        )


async def find_user_by_username(sessions: async_sessionmaker[AsyncSession], username: str) -> User | None:
    async with sessions() as session:
        return await queries.get_user_by_username(session, username)


async def get_user(
    sessions: async_sessionmaker[AsyncSession], actor: CurrentUser, user_id: uuid.UUID
) -> User:
    """The user ``user_id`` as ``actor`` may see it; NotFound otherwise."""
    if not actor.is_admin and actor.id != user_id:
        raise NotFound("User not found")
    async with sessions() as session:
        user = await queries.get_user(session, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


async def list_users(
    sessions: async_sessionmaker[AsyncSession], *, search: str | None, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    async with sessions() as session:
        return await queries.list_users(session, search=search, offset=offset, limit=limit)


async def update_user(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    *,
    actor: CurrentUser,
    user_id: uuid.UUID,
    changes: UserUpdate,
) -> User:
    """Apply a partial update under the access rules (see module docstring).

    Changing one's own password needs ``currentPassword``; any password change, and any
    deactivation, revokes the user's refresh tokens (its access tokens run out within their TTL)."""
    fields = changes.model_fields_set - {"current_password"}
    _check_update_allowed(actor, user_id, changes, fields)
    values: dict[str, Any] = {name: getattr(changes, name) for name in fields & _PLAIN_FIELDS}
    if "password" in fields:
        if actor.id == user_id:
            await _check_current_password(sessions, settings, redis, actor, changes.current_password)
        values["password_hash"] = await passwords.hash_password(changes.password, settings.bcrypt_cost)
    async with sessions() as session, session.begin():
        if await queries.get_user(session, user_id, for_update=True) is None:
            raise NotFound("User not found")
        try:
            async with session.begin_nested():
                user = await queries.update_user(session, user_id, values)
        except IntegrityError as exc:
            if queries.is_username_conflict(exc):
                raise UsernameTaken() from None
            raise
        if "password_hash" in values or values.get("is_active") is False:
            await refresh_tokens.revoke_all(session, user_id)
    return user


def _check_update_allowed(
    actor: CurrentUser, user_id: uuid.UUID, changes: UserUpdate, fields: set[str]
) -> None:
    if not actor.is_admin:
        if actor.id != user_id:
            raise NotFound("User not found")
        if fields & {"role", "is_active"}:
            raise Forbidden("Only an administrator may change role or isActive")
    elif actor.id == user_id and (changes.role == "user" or changes.is_active is False):
        # An admin locking itself out is almost always a mistake; another admin can do it.
        raise Conflict("You cannot demote or deactivate yourself")


async def _check_current_password(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    redis: Redis,
    actor: CurrentUser,
    current_password: str | None,
) -> None:
    if current_password is None:
        raise ValidationError(
            details=[
                {
                    "field": "currentPassword",
                    "type": "missing",
                    "message": "required to change your own password",
                }
            ]
        )
    # Guessing the current password with a stolen access token counts against the login limit.
    await ratelimit.hit(
        redis, f"login:user:{actor.username.lower()}", settings.rate_limit_login_per_username, RATE_WINDOW_S
    )
    async with sessions() as session:
        user = await queries.get_user(session, actor.id)
    if user is None or not await passwords.verify_password(current_password, user.password_hash):
        raise InvalidCredentials("currentPassword is wrong")


async def deactivate_user(
    sessions: async_sessionmaker[AsyncSession], *, actor: CurrentUser, user_id: uuid.UUID
) -> User:
    """Deactivate a user and revoke all its refresh tokens; its rows and ledger history stay."""
    if actor.id == user_id:
        raise Conflict("You cannot deactivate yourself")
    async with sessions() as session, session.begin():
        if await queries.get_user(session, user_id, for_update=True) is None:
            raise NotFound("User not found")
        user = await queries.update_user(session, user_id, {"is_active": False})
        await refresh_tokens.revoke_all(session, user_id)
    return user
