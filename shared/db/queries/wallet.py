"""Small query functions over invoices, payments and idempotency keys. Nothing here commits."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, literal, null, select, union_all, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import BigInteger, DateTime, Text

from shared.db.models import IdempotencyKey, Invoice, Payment

ACTIVE_PAYMENT_HASH_INDEX = "payments_payment_hash_active_key"


def is_active_payment_conflict(exc: IntegrityError) -> bool:
    """True when ``exc`` is the partial unique index allowing one non-failed payment per hash."""
    return ACTIVE_PAYMENT_HASH_INDEX in str(exc.orig)


# ---- invoices ---------------------------------------------------------------------------------


async def insert_invoice(
    session: AsyncSession,
    *,
    invoice_id: uuid.UUID,
    user_id: uuid.UUID,
    amount_msat: int,
    memo: str,
    expiry_s: int,
    webhook_url: str | None,
) -> Invoice:
    statement = (
        insert(Invoice)
        .values(
            id=invoice_id,
            user_id=user_id,
            amount_msat=amount_msat,
            memo=memo,
            expiry_s=expiry_s,
            webhook_url=webhook_url,
            state="pending",
        )
        .returning(Invoice)
    )
    return (await session.scalars(statement)).one()


async def get_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice | None:
    return await session.scalar(select(Invoice).where(Invoice.id == invoice_id))


async def get_invoice_by_hash(session: AsyncSession, payment_hash: bytes) -> Invoice | None:
    return await session.scalar(select(Invoice).where(Invoice.payment_hash == payment_hash))


async def get_invoice_state(session: AsyncSession, invoice_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Invoice.state).where(Invoice.id == invoice_id))


# ---- payments ---------------------------------------------------------------------------------


async def insert_payment(session: AsyncSession, **values: Any) -> Payment:
    """Insert a payment row. Raises IntegrityError (see :func:`is_active_payment_conflict`) when a
    non-failed payment for the same hash exists or is being inserted by a concurrent transaction."""
    return (await session.scalars(insert(Payment).values(**values).returning(Payment))).one()


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> Payment | None:
    return await session.scalar(select(Payment).where(Payment.id == payment_id))


async def get_payment_state(session: AsyncSession, payment_id: uuid.UUID) -> str | None:
    return await session.scalar(select(Payment.state).where(Payment.id == payment_id))


async def get_active_payment_by_hash(session: AsyncSession, payment_hash: bytes) -> Payment | None:
    """The one payment for this hash that has not failed (pending, in flight or succeeded), if any."""
    return await session.scalar(
        select(Payment).where(Payment.payment_hash == payment_hash, Payment.state != "failed")
    )


async def get_latest_payment_by_hash(
    session: AsyncSession,
    payment_hash: bytes,
    *,
    user_id: uuid.UUID | None,
) -> Payment | None:
    statement = select(Payment).where(Payment.payment_hash == payment_hash)
    if user_id is not None:
        statement = statement.where(Payment.user_id == user_id)
    return await session.scalar(statement.order_by(Payment.created_at.desc()).limit(1))


# ---- activity (invoices and payments in one list) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    user_id: uuid.UUID | None  # None: every user's rows (admin)
    direction: str | None = None
    state: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _incoming(f: ActivityFilter) -> Select:
    statement = select(
        Invoice.id,
        literal("incoming", Text).label("direction"),
        Invoice.user_id,
        Invoice.state,
        Invoice.amount_msat,
        null().cast(BigInteger).label("fee_msat"),
        Invoice.memo,
        Invoice.payment_hash,
        Invoice.payment_request,
        Invoice.created_at,
        Invoice.settled_at,
        null().cast(DateTime(timezone=True)).label("completed_at"),
        Invoice.expires_at,
    )
    return _where(statement, Invoice, f)


def _outgoing(f: ActivityFilter) -> Select:
    statement = select(
        Payment.id,
        literal("outgoing", Text).label("direction"),
        Payment.user_id,
        Payment.state,
        Payment.amount_msat,
        Payment.fee_msat,
        Payment.memo,
        Payment.payment_hash,
        Payment.payment_request,
        Payment.created_at,
        null().cast(DateTime(timezone=True)).label("settled_at"),
        Payment.completed_at,
        null().cast(DateTime(timezone=True)).label("expires_at"),
    )
    return _where(statement, Payment, f)


def _where(statement: Select, model: Any, f: ActivityFilter) -> Select:
    # Every value is a bound parameter; the (user_id, created_at) indexes serve the common case.
    if f.user_id is not None:
        statement = statement.where(model.user_id == f.user_id)
    if f.state is not None:
        statement = statement.where(model.state == f.state)
    if f.created_from is not None:
        statement = statement.where(model.created_at >= f.created_from)
    if f.created_to is not None:
        statement = statement.where(model.created_at < f.created_to)
    return statement


def _parts(f: ActivityFilter) -> list[Select]:
    parts = []
    if f.direction in (None, "incoming"):
        parts.append(_incoming(f))
    if f.direction in (None, "outgoing"):
        parts.append(_outgoing(f))
    return parts


async def list_activity(
    session: AsyncSession,
    f: ActivityFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """(rows newest first, total count) of invoices and payments matching ``f`` (UNION ALL)."""
    # Each side is cut to offset+limit rows first so Postgres can stop its index scan early.
    parts = [
        part.order_by(part.selected_columns.created_at.desc()).limit(offset + limit) for part in _parts(f)
    ]
    union = union_all(*[part.subquery().select() for part in parts]).subquery("activity")
    rows = (
        await session.execute(
            select(union).order_by(union.c.created_at.desc(), union.c.id.desc()).limit(limit).offset(offset)
        )
    ).all()
    total = 0
    for part in _parts(f):
        total += await session.scalar(select(func.count()).select_from(part.subquery()))
    return list(rows), int(total)


# ---- idempotency keys -------------------------------------------------------------------------


async def get_idempotency_key(session: AsyncSession, user_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.user_id == user_id, IdempotencyKey.key == key)
    )


async def claim_idempotency_key(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    endpoint: str,
    request_hash: bytes,
    resource_id: uuid.UUID,
) -> bool:
    """Insert the key row; False when it exists already. A concurrent insert of the same key waits for
    the other transaction, then yields False if that one committed (ON CONFLICT DO NOTHING)."""
    statement = (
        pg_insert(IdempotencyKey)
        .values(
            user_id=user_id, key=key, endpoint=endpoint, request_hash=request_hash, resource_id=resource_id
        )
        .on_conflict_do_nothing(index_elements=["user_id", "key"])
        .returning(IdempotencyKey.key)
    )
    return (await session.scalar(statement)) is not None


async def store_idempotent_response(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    key: str,
    status: int,
    body: Any,
) -> None:
    await session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.user_id == user_id,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        )
        .values(response_status=status, response_body=body)
    )
