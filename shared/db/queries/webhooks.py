"""Queries over webhook deliveries for the API. Nothing here commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db.models import WebhookDelivery

_DELIVERIES = WebhookDelivery.__table__
_LIST_COLUMNS = [column for column in _DELIVERIES.c if column.name != "payload"]


async def list_deliveries(
    connection: AsyncConnection, *, user_id: uuid.UUID | None, state: str | None, limit: int, offset: int
) -> tuple[list[Any], int]:
    """A page of deliveries, newest first, and the total; ``user_id=None``: every user's."""
    conditions = []
    if user_id is not None:
        conditions.append(_DELIVERIES.c.user_id == user_id)
    if state is not None:
        conditions.append(_DELIVERIES.c.state == state)
    page = (
        select(*_LIST_COLUMNS, func.count().over().label("total"))
        .where(*conditions)
        .order_by(_DELIVERIES.c.created_at.desc(), _DELIVERIES.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = (await connection.execute(page)).all()
    if rows:
        return rows, int(rows[0].total)
    total = await connection.scalar(select(func.count()).select_from(_DELIVERIES).where(*conditions))
    return [], int(total or 0)


async def request_redelivery(session: AsyncSession, delivery_id: int, user_id: uuid.UUID | None) -> Any:
    """Make the delivery due now, with a fresh round of retries; None if there is none with this id
    belonging to ``user_id`` (``user_id=None``: any user's, for admins).

    Moving ``next_attempt_at`` also voids the lease of an attempt running right now (its outcome is
    not recorded), so the attempt this asks for starts after the request."""
    conditions = [WebhookDelivery.id == delivery_id]
    if user_id is not None:
        conditions.append(WebhookDelivery.user_id == user_id)
    statement = (
        update(WebhookDelivery)
        .where(*conditions)
        .values(state="pending", attempts_in_round=0, next_attempt_at=func.clock_timestamp())
        .returning(*_LIST_COLUMNS)
    )
    return (await session.execute(statement)).one_or_none()
