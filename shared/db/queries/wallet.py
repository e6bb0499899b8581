"""Small query functions over invoices, payments and idempotency keys. Nothing here commits."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import TextClause, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from shared.db.models import Account, IdempotencyKey, Invoice, Payment, User

ACTIVE_PAYMENT_HASH_INDEX = "payments_payment_hash_active_key"


def is_active_payment_conflict(exc: IntegrityError) -> bool:
    """True when ``exc`` is the partial unique index allowing one non-failed payment per hash."""
    return ACTIVE_PAYMENT_HASH_INDEX in str(exc.orig)


# ---- invoices ---------------------------------------------------------------------------------


_INSERT_PENDING_SQL = (
    "INSERT INTO invoices (id, user_id, account_id, for_treasury, amount_msat, memo, expiry_s, webhook_url,"
    " description_hash, state) VALUES ($1, $2, (SELECT id FROM accounts WHERE {owner}), $3, $4, $5, $6, $7,"
    " $8, 'pending')"
)
_INSERT_PENDING = {
    False: _INSERT_PENDING_SQL.format(owner="user_id = $2"),
    True: _INSERT_PENDING_SQL.format(owner="kind = 'treasury'"),
}


async def insert_invoice(
    target: AsyncSession | asyncpg.Connection,
    *,
    invoice_id: uuid.UUID,
    user_id: uuid.UUID,
    amount_msat: int,
    memo: str,
    expiry_s: int,
    webhook_url: str | None,
    for_treasury: bool = False,
    description_hash: bytes | None = None,
) -> None:
    """Insert the ``pending`` row. The account its settlement credits comes from a subquery (no extra
    round trip): the user's own, or the treasury's for an admin's treasury invoice.

    In a session's transaction (with other writes), or as ONE autocommit statement on an asyncpg
    connection when the row is all there is to write (no BEGIN/COMMIT round trips, no ORM object)."""
    if isinstance(target, asyncpg.Connection):
        await target.execute(
            _INSERT_PENDING[for_treasury],
            invoice_id,
            user_id,
            for_treasury,
            amount_msat,
            memo,
            expiry_s,
            webhook_url,
            description_hash,
        )
        return
    owner = Account.kind == "treasury" if for_treasury else Account.user_id == user_id
    await target.execute(
        insert(Invoice).values(
            id=invoice_id,
            user_id=user_id,
            account_id=select(Account.id).where(owner).scalar_subquery(),
            for_treasury=for_treasury,
            amount_msat=amount_msat,
            memo=memo,
            expiry_s=expiry_s,
            webhook_url=webhook_url,
            description_hash=description_hash,
            state="pending",
        )
    )


async def fetch_invoice(connection: asyncpg.Connection, invoice_id: uuid.UUID) -> asyncpg.Record | None:
    """The invoices row by id (every column), on an asyncpg connection."""
    return await connection.fetchrow("SELECT * FROM invoices WHERE id = $1", invoice_id)


async def get_invoice(session: AsyncSession, invoice_id: uuid.UUID) -> Invoice | None:
    return await session.scalar(select(Invoice).where(Invoice.id == invoice_id))


async def read_invoice(connection: AsyncConnection, invoice_id: uuid.UUID) -> Any:
    """The invoice row as a plain Row (same attribute names as the model), in one statement."""
    table = Invoice.__table__
    return (await connection.execute(select(table).where(table.c.id == invoice_id))).one_or_none()


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


async def read_payment(connection: AsyncConnection, payment_id: uuid.UUID) -> Any:
    """The payment row as a plain Row (same attribute names as the model), in one statement."""
    table = Payment.__table__
    return (await connection.execute(select(table).where(table.c.id == payment_id))).one_or_none()


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


UNFINISHED_PAYMENT_STATES = ("pending", "in_flight")


async def list_unfinished_payments(
    connection: AsyncConnection, *, limit: int, offset: int
) -> tuple[list[Any], int]:
    """Every user's payments not final yet (pending or in flight), oldest first, and their total.

    Each row has the payment's columns, the payer's ``username`` and ``age_s`` (seconds since it was
    created, by the database clock)."""
    payments, users = Payment.__table__, User.__table__
    unfinished = payments.c.state.in_(UNFINISHED_PAYMENT_STATES)
    page = (
        select(
            payments,
            users.c.username,
            func.extract("epoch", func.now() - payments.c.created_at).label("age_s"),
            func.count().over().label("total"),
        )
        .join(users, users.c.id == payments.c.user_id)
        .where(unfinished)
        .order_by(payments.c.created_at, payments.c.id)
        .limit(limit)
        .offset(offset)
    )
    rows = (await connection.execute(page)).all()
    if rows:
        return rows, int(rows[0].total)
    total = await connection.scalar(select(func.count()).select_from(payments).where(unfinished))
    return [], int(total or 0)


# ---- activity (invoices and payments in one list) ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ActivityFilter:
    user_id: uuid.UUID | None  # None: every user's rows (admin)
    direction: str | None = None
    state: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


_INCOMING_COLUMNS = (
    "id, 'invoice'::text AS kind, 'incoming'::text AS direction, user_id, state, amount_msat,"
    " NULL::bigint AS fee_msat, memo, payment_hash, payment_request, created_at, settled_at,"
    " NULL::timestamptz AS completed_at, expires_at"
)
_OUTGOING_COLUMNS = (
    "id, 'payment'::text AS kind, 'outgoing'::text AS direction, user_id, state, amount_msat, fee_msat,"
    " memo, payment_hash, payment_request, created_at, NULL::timestamptz AS settled_at, completed_at,"
    " NULL::timestamptz AS expires_at"
)
# An adjustment reads like a settled invoice (credit) or a succeeded payment (debit); memo = reason.
_ADJUSTMENT_COLUMNS = (
    "id, 'adjustment'::text AS kind,"
    " CASE kind WHEN 'credit' THEN 'incoming' ELSE 'outgoing' END AS direction, user_id,"
    " CASE kind WHEN 'credit' THEN 'settled' ELSE 'succeeded' END AS state, amount_msat,"
    " NULL::bigint AS fee_msat, reason AS memo, NULL::bytea AS payment_hash, NULL::text AS payment_request,"
    " created_at, CASE kind WHEN 'credit' THEN created_at END AS settled_at,"
    " CASE kind WHEN 'debit' THEN created_at END AS completed_at, NULL::timestamptz AS expires_at"
)
_ADJUSTMENT_KINDS = {None: "('credit', 'debit')", "incoming": "('credit')", "outgoing": "('debit')"}


@functools.lru_cache(maxsize=64)
def _activity_sql(
    direction: str | None, by_user: bool, by_state: bool, by_from: bool, by_to: bool
) -> TextClause:
    """One statement per filter shape: the page and the total in one round trip.

    Only fixed fragments are joined here; every value is a bound parameter. Each side is cut to
    offset+limit rows first, so Postgres walks the (user_id, created_at) indexes and stops early.
    Adjustments (credits and debits of a user's balance by an admin) are listed with the invoices and
    payments; their computed direction and state are filtered in a subquery."""
    conditions = [
        condition
        for wanted, condition in (
            (by_user, "user_id = :user_id"),
            (by_state, "state = :state"),
            (by_from, "created_at >= :created_from"),
            (by_to, "created_at < :created_to"),
        )
        if wanted
    ]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    adjustments = (
        f"(SELECT {_ADJUSTMENT_COLUMNS} FROM adjustments"  # noqa: S608 - fixed fragments only
        f" WHERE kind IN {_ADJUSTMENT_KINDS[direction]}) AS adjustments"
    )
    sides = [("invoices", _INCOMING_COLUMNS)] if direction in (None, "incoming") else []
    sides += [("payments", _OUTGOING_COLUMNS)] if direction in (None, "outgoing") else []
    selects = [f"SELECT {columns} FROM {table} {where}" for table, columns in sides]  # noqa: S608
    selects.append(f"SELECT * FROM {adjustments} {where}")  # noqa: S608
    page = " UNION ALL ".join(f"({select} ORDER BY created_at DESC LIMIT :window)" for select in selects)
    counted = [f"{table} {where}" for table, _ in sides] + [f"{adjustments} {where}"]
    total = " + ".join(f"(SELECT count(*) FROM {source})" for source in counted)  # noqa: S608
    return text(
        f"SELECT t.total, p.* FROM (SELECT {total} AS total) t"  # noqa: S608 - fixed fragments only
        f" LEFT JOIN LATERAL (SELECT * FROM ({page}) a ORDER BY created_at DESC, id DESC"
        " LIMIT :limit OFFSET :offset) p ON true"
    )


def _activity_params(f: ActivityFilter, *, limit: int, offset: int) -> dict[str, Any]:
    return {
        "user_id": f.user_id,
        "state": f.state,
        "created_from": f.created_from,
        "created_to": f.created_to,
        "window": offset + limit,
        "limit": limit,
        "offset": offset,
    }


async def list_activity(
    session: AsyncSession | AsyncConnection,
    f: ActivityFilter,
    *,
    limit: int,
    offset: int,
) -> tuple[list[Any], int]:
    """(rows newest first, total count) of invoices and payments matching ``f`` (UNION ALL)."""
    statement = _activity_sql(
        f.direction,
        f.user_id is not None,
        f.state is not None,
        f.created_from is not None,
        f.created_to is not None,
    )
    params = _activity_params(f, limit=limit, offset=offset)
    used = {name: value for name, value in params.items() if f":{name}" in statement.text}
    result = (await session.execute(statement, used)).all()
    total = int(result[0].total) if result else 0
    return [row for row in result if row.id is not None], total


_BIND = re.compile(r"(?<![:\w]):(\w+)")


@functools.lru_cache(maxsize=32)
def _own_activity_sql(
    direction: str | None, by_state: bool, by_from: bool, by_to: bool
) -> tuple[str, tuple[str, ...]]:
    """The caller's users row and their activity page with its total, in ONE statement for asyncpg
    (``$n`` placeholders) and the parameter names in their order. The users row is read on every
    request (deactivation takes effect at once); an inactive user's page is not even read."""
    page = _activity_sql(direction, True, by_state, by_from, by_to).text
    return positional(
        "SELECT u.username, u.role, u.is_active, a.* FROM users u"  # noqa: S608 - fixed fragments only
        f" LEFT JOIN LATERAL ({page}) a ON u.is_active WHERE u.id = :user_id"
    )


def activity_statement(direction: str | None, *, by_user: bool = True) -> tuple[str, tuple[str, ...]]:
    """The activity statement (page and total) alone, for asyncpg: ``$n`` text and parameter names."""
    return positional(_activity_sql(direction, by_user, False, False, False).text)


def positional(statement: str) -> tuple[str, tuple[str, ...]]:
    """``:name`` placeholders as asyncpg's ``$n`` (each name one number) and the names in order."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    return _BIND.sub(number, statement), tuple(names)


async def list_own_activity(
    connection: asyncpg.Connection, f: ActivityFilter, *, limit: int, offset: int
) -> tuple[asyncpg.Record | None, list[asyncpg.Record], int]:
    """(the caller's users row or None, their rows newest first, total) for ``f.user_id``, one round trip.

    The first element has ``username``, ``role`` and ``is_active``; an inactive user gets no rows."""
    statement, names = _own_activity_sql(
        f.direction, f.state is not None, f.created_from is not None, f.created_to is not None
    )
    params = _activity_params(f, limit=limit, offset=offset)
    records = await connection.fetch(statement, *(params[name] for name in names))
    if not records:
        return None, [], 0
    first = records[0]
    if not first["is_active"]:
        return first, [], 0
    return first, [r for r in records if r["id"] is not None], int(first["total"])


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
