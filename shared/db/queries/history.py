"""A user's own history as wallet apps list it: payments with their preimages and holds, invoices that
exist at the node. Plain rows, newest first; nothing here commits."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.models import Invoice, Payment

_PAYMENTS = Payment.__table__
_INVOICES = Invoice.__table__


async def list_user_payments(
    connection: AsyncConnection, user_id: uuid.UUID, *, limit: int, offset: int
) -> list[Any]:
    """The user's own payments that spent or still hold money (not failed, not from the treasury)."""
    c = _PAYMENTS.c
    statement = (
        select(
            c.id,
            c.state,
            c.amount_msat,
            c.fee_msat,
            c.fee_limit_msat,
            c.memo,
            c.payment_hash,
            c.preimage,
            c.created_at,
        )
        .where(c.user_id == user_id, c.state != "failed", c.from_treasury.is_(False))
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list((await connection.execute(statement)).all())


async def list_user_invoices(connection: AsyncConnection, user_id: uuid.UUID, *, limit: int) -> list[Any]:
    """The user's newest ``limit`` incoming invoices that the node made (they have a payment request).
    An admin's treasury invoices credit the treasury, not the admin's wallet: they are not listed."""
    c = _INVOICES.c
    statement = (
        select(_INVOICES)
        .where(c.user_id == user_id, c.payment_request.is_not(None), c.for_treasury.is_(False))
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(limit)
    )
    return list((await connection.execute(statement)).all())
