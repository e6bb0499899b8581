"""Small query functions over users. They never commit: the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import User

USERNAME_UNIQUE_INDEX = "users_username_lower_key"


def is_username_conflict(exc: IntegrityError) -> bool:
    """True when ``exc`` is the case-insensitive unique index on usernames refusing a duplicate."""
    return USERNAME_UNIQUE_INDEX in str(exc.orig)


async def insert_user(session: AsyncSession, *, username: str, password_hash: str, role: str) -> User:
    """Insert a user row. Raises IntegrityError on a duplicate name (see :func:`is_username_conflict`)."""
    statement = insert(User).values(username=username, password_hash=password_hash, role=role).returning(User)
    return (await session.scalars(statement)).one()


async def get_user(session: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    statement = select(User).where(User.id == user_id)
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def get_user_by_username(session: AsyncSession, username: str) -> User | None:
    """The user whose name equals ``username`` ignoring case (served by the unique lower() index)."""
    if "\x00" in username:  # Postgres text cannot hold NUL, so no stored name has one; asking would fail
        return None
    return await session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_users(
    session: AsyncSession, *, search: str | None, offset: int, limit: int
) -> tuple[Sequence[User], int]:
    """A page of users, oldest first, and the total count; ``search`` is a case-insensitive substring
    of the username, matched literally (LIKE wildcards escaped, value bound)."""
    condition = true()
    if search:
        condition = User.username.ilike(f"%{_escape_like(search)}%", escape="\\")
    total = await session.scalar(select(func.count()).select_from(User).where(condition))
    rows = await session.scalars(
        select(User).where(condition).order_by(User.created_at, User.id).offset(offset).limit(limit)
    )
    return rows.all(), int(total or 0)


async def update_user(session: AsyncSession, user_id: uuid.UUID, values: dict[str, Any]) -> User | None:
    """Set ``values`` (column name → value) and ``updated_at``; the updated row, or None if absent.

    Raises IntegrityError when a new username collides with another user's."""
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(**values, updated_at=func.now())
        .returning(User)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def mark_logged_in(session: AsyncSession, user_id: uuid.UUID) -> User:
    statement = (
        update(User)
        .where(User.id == user_id)
        .values(last_login_at=func.now())
        .returning(User)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()
