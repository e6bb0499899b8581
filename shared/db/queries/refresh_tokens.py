"""Refresh-token rows: only the sha256 of a token is stored. Nothing here commits."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db.models import RefreshToken


async def insert_refresh_token(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    family_id: uuid.UUID,
    token_hash: bytes,
    expires_at: datetime,
) -> None:
    await session.execute(
        insert(RefreshToken).values(
            user_id=user_id, family_id=family_id, token_hash=token_hash, expires_at=expires_at
        )
    )


async def spend_refresh_token(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    """Mark a live token used and return it; None if it is unknown, spent, revoked or expired.

    One conditional UPDATE: of two concurrent calls with the same token, the second waits on the
    row lock, then re-checks ``used_at IS NULL`` and finds nothing, so only one rotation wins."""
    statement = (
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > func.now(),
        )
        .values(used_at=func.now())
        .returning(RefreshToken)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


async def get_refresh_token(session: AsyncSession, token_hash: bytes) -> RefreshToken | None:
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def revoke_family(session: AsyncSession, family_id: uuid.UUID) -> int:
    """Revoke every live token of a login session (family); the number revoked."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


async def revoke_user_tokens(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Revoke every live refresh token of a user (all sessions); the number revoked."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=func.now())
        .execution_options(synchronize_session=False)
    )
    return result.rowcount
