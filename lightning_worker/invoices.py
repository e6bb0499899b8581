"""Job ``create_invoice``: turn a ``pending`` invoice row into an LND invoice and mark it ``open``.

Idempotent: the preimage is derived from the row id, so a retried (or duplicated) job asks LND for
the same payment hash; LND answers "already exists" and we look the invoice up instead of making
a second one. The row only moves with a conditional UPDATE ``WHERE state = 'pending'``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from lightning_worker.context import WorkerContext, get_context
from lightning_worker.retry import retry_transient
from shared.db.engine import driver_connection
from shared.db.models import Invoice as InvoiceRow
from shared.errors import InvoiceAlreadyExists, LightningRequestError
from shared.events import RowEvent
from shared.lightning.types import Invoice, InvoiceState

log = logging.getLogger(__name__)

LND_DEFAULT_EXPIRY_S = 86_400
_PENDING_SQL = (
    "SELECT id, user_id, state, amount_msat, memo, expiry_s, created_at, description_hash"
    " FROM invoices WHERE id = $1"
)
# Conditional: only a pending row moves (a retried or duplicated job changes nothing).
_OPEN_SQL = (
    "UPDATE invoices SET state = 'open', payment_request = $2, payment_hash = $3, add_index = $4,"
    " expires_at = $5, updated_at = $6 WHERE id = $1 AND state = 'pending' RETURNING id"
)


@dataclass(frozen=True, slots=True)
class _Pending:
    """What the job reads of its invoices row."""

    id: uuid.UUID
    user_id: uuid.UUID
    state: str
    amount_msat: int
    memo: str
    expiry_s: int
    created_at: datetime
    description_hash: bytes | None


def derive_preimage(preimage_key: bytes, invoice_id: uuid.UUID) -> bytes:
    """Deterministic preimage of an invoice: HMAC-SHA256(key, b"invoice:" + id bytes)."""
    return hmac.new(preimage_key, b"invoice:" + invoice_id.bytes, hashlib.sha256).digest()


def payment_hash_of(preimage: bytes) -> bytes:
    return hashlib.sha256(preimage).digest()


@retry_transient
async def create_invoice(ctx: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    context = get_context(ctx)
    row_id = uuid.UUID(invoice_id)
    # The hot path of every create: single statements on the asyncpg connection (no ORM, no BEGIN).
    async with driver_connection(context.engine) as connection:
        record = await connection.fetchrow(_PENDING_SQL, row_id)
    row = None if record is None else _Pending(**record)
    if row is None:
        log.warning("create_invoice: no invoice row %s", invoice_id)
        return {"state": "missing"}
    if row.state != "pending":
        return {"state": row.state}

    expiry_s = row.expiry_s if row.expiry_s > 0 else LND_DEFAULT_EXPIRY_S
    if row.created_at + timedelta(seconds=expiry_s) <= datetime.now(UTC):
        # Never created at the node while it could have been paid; nobody ever saw a payment
        # request for it, so nothing can arrive for it.
        return await _mark_failed(context, row, "not created before its expiry")

    preimage = derive_preimage(context.settings.preimage_key, row.id)
    payment_hash = payment_hash_of(preimage)
    started_s = int(time.time())  # LND's creation_date is >= this: our expiry is never later than LND's
    try:
        added = await context.lightning.add_invoice(
            value_msat=row.amount_msat,
            memo=row.memo,
            expiry_s=expiry_s,
            preimage=preimage,
            description_hash=row.description_hash,
        )
        payment_request, add_index, created_s = added.payment_request, added.add_index, started_s
        found: Invoice | None = None
    except InvoiceAlreadyExists:
        # A previous try reached LND but did not record the answer: the same invoice, found again.
        found = await context.lightning.lookup_invoice(payment_hash)
        payment_request, add_index = found.payment_request, found.add_index
        created_s, expiry_s = found.creation_date, found.expiry_s or expiry_s
    except LightningRequestError as exc:
        return await _mark_failed(context, row, exc.message or "refused by the node")

    async with driver_connection(context.engine) as connection:
        changed = (
            await connection.fetchval(
                _OPEN_SQL,
                row.id,
                payment_request,
                payment_hash,
                add_index,
                datetime.fromtimestamp(created_s + expiry_s, UTC),
                datetime.now(UTC),
            )
            is not None
        )
    if changed:
        await context.publish([RowEvent("invoice", row.id, "open", row.user_id)])
    if found is not None and found.state is InvoiceState.SETTLED:
        # Cannot happen in practice (nobody had the payment request), but if it did the settlement
        # may sit below the subscription's cursor: credit it here rather than never.
        from lightning_worker.settlement import settle_invoices

        await settle_invoices(context, [found], cursor_node=None)
    elif changed:
        return {"state": "open"}
    async with context.sessions() as session:
        state = await session.scalar(select(InvoiceRow.state).where(InvoiceRow.id == row.id))
    return {"state": state}


async def _mark_failed(context: WorkerContext, row: _Pending, reason: str) -> dict[str, Any]:
    async with context.sessions() as session, session.begin():
        result = await session.execute(
            update(InvoiceRow)
            .where(InvoiceRow.id == row.id, InvoiceRow.state == "pending")
            .values(state="failed", failure_reason=reason[:500], updated_at=datetime.now(UTC))
            .returning(InvoiceRow.id)
        )
        changed = result.scalar_one_or_none() is not None
    if changed:
        log.info("invoice %s failed: %s", row.id, reason)
        await context.publish([RowEvent("invoice", row.id, "failed", row.user_id)])
        return {"state": "failed"}
    async with context.sessions() as session:
        return {"state": await session.scalar(select(InvoiceRow.state).where(InvoiceRow.id == row.id))}
