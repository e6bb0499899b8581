"""Reading adjustments and treasury deposits, with the usernames of who they concern and who made them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import aliased

from shared.db.models import Adjustment, User

_subject = aliased(User)
_author = aliased(User)


def _with_names():
    return (
        select(
            Adjustment.id,
            Adjustment.kind,
            Adjustment.user_id,
            _subject.username.label("username"),
            Adjustment.amount_msat,
            Adjustment.reason,
            Adjustment.created_by,
            _author.username.label("created_by_username"),
            Adjustment.created_at,
        )
        .outerjoin(_subject, _subject.id == Adjustment.user_id)
        .outerjoin(_author, _author.id == Adjustment.created_by)
    )


async def get_adjustment(session: AsyncSession | AsyncConnection, adjustment_id: uuid.UUID) -> Any:
    return (await session.execute(_with_names().where(Adjustment.id == adjustment_id))).one_or_none()


async def list_adjustments(
    session: AsyncSession | AsyncConnection,
    *,
    kinds: Sequence[str],
    user_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """(rows newest first, total) of the given kinds, optionally of one user."""
    conditions = [Adjustment.kind.in_(kinds)]
    if user_id is not None:
        conditions.append(Adjustment.user_id == user_id)
    rows = (
        await session.execute(
            _with_names()
            .where(*conditions)
            .order_by(Adjustment.created_at.desc(), Adjustment.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()
    total = await session.scalar(select(func.count()).select_from(Adjustment).where(*conditions))
    return list(rows), int(total or 0)
